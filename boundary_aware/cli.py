"""Shared behaviour of the command-line tools."""

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
