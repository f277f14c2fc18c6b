"""The errors a user can cause, each with a message that names the file and the problem.

Command-line tools print them as one line, `error: <message>`, and exit with
status 1 (`boundary_aware.cli.exit_on`).
"""


class DataError(ValueError):
    """Bad input: a file, folder or option; the message names it and the problem."""


class LockedError(RuntimeError):
    """Another process holds the lock on a run directory or an output; the message names it."""


class FormatError(DataError):
    """A file written by another version of the package (an older format); the message
    names the file and the command that writes it again."""


class ConfigError(ValueError):
    """An experiment config that training cannot use; the message names the key, the value
    and what is allowed."""
