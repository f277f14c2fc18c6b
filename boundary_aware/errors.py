"""The errors a user can cause, each with a message that names the file and the problem.

Command-line tools print them as one line, `error: <message>`, and exit with
status 1 (`boundary_aware.cli.exit_on`).
"""


class DataError(ValueError):
    """Bad input: a file, folder or option; the message names it and the problem."""


class LockedError(RuntimeError):
    """Another process holds the lock on a run directory or an output; the message names it."""
