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


def run_absl(define_flags, main) -> None:
    """Define a tool's absl flags, then run its `main`: the body of every console entry point."""
    from absl import app
    define_flags()
    app.run(main)
