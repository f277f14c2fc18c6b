"""Shared behaviour of the command-line tools: expected failures are one line, not a traceback."""

import contextlib
import errno
import os
import sys


# what to do about an operating-system error a user can cause, by its errno
_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free some space and rerun",
    errno.EDQUOT: "the disk quota is used up; free some space and rerun",
    errno.ENAMETOOLONG: "the name is too long for this file system; choose a shorter one",
    errno.EACCES: "no permission; choose a place you may write to, or fix the permissions",
    errno.EPERM: "not permitted; choose a place you may write to, or fix the permissions",
    errno.EROFS: "the file system is read-only; choose a place you may write to",
    errno.EISDIR: "a folder is where a file should be",
    errno.ENOTDIR: "a file is where a folder should be",
    errno.ENOENT: "no such file or folder",
}


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error: the path(s) it concerns, what happened, and
    what to do about it where that is known."""
    paths = [str(p) for p in (err.filename, getattr(err, "filename2", None)) if p is not None]
    what = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno)
    where = f"{' -> '.join(paths)}: " if paths else ""
    return f"{where}{what}" + (f" ({hint})" if hint and hint != what.lower() else "")


def max_workers() -> int:
    """The most worker processes a command starts at once: twice this machine's cores
    (each worker holds its own data; beyond the cores they only wait and take memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 2 * max(1, cores)


def default_workers() -> int:
    """Worker processes a command starts by default: one per core."""
    return max_workers() // 2


def check_workers(value, flag: str = "--workers") -> int:
    """`value` as a worker count in [1, `max_workers()`]; ValueError naming `flag` else."""
    limit = max_workers()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValueError(f"{flag} must be an integer from 1 to {limit} (twice this machine's "
                         f"cores), got {value!r}")
    return value


@contextlib.contextmanager
def exit_on(*errors):
    """Turn the expected `errors` into "error: <message>" on stderr and exit status 1.

    Operating-system errors (a full disk, a name too long, no permission, a folder where a
    file should be, ...) and running out of memory are failures a user can cause in every
    command: they become one line too, naming the path (`os_error_message`).
    """
    try:
        yield
    except errors as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        sys.exit(1)
    except MemoryError:
        print("error: out of memory; lower the sizes asked for (--batch_size, --image_size, "
              "--workers) or free memory", file=sys.stderr)
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
