"""Shared behaviour of the command-line tools: expected failures are one line, not a traceback."""

import contextlib
import sys


@contextlib.contextmanager
def exit_on(*errors):
    """Turn the expected `errors` into "error: <message>" on stderr and exit status 1."""
    try:
        yield
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def _parse_flags(argv):
    """absl's flag parsing, with bad flags and bad config overrides as one line each."""
    from absl import flags
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        message = str(err)
    except (AttributeError, KeyError, TypeError, ValueError) as err:  # ml_collections overrides
        message = str(err).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    print(f"error: {message} (see --help)", file=sys.stderr)
    sys.exit(1)


def run_absl(define_flags, main) -> None:
    """Define a tool's absl flags, then run its `main`: the body of every console entry point."""
    from absl import app
    define_flags()
    app.run(main, flags_parser=_parse_flags)
