"""Test-only fault injection: run a tool and SIGKILL it around one of its file writes.

    python -m tests.kill_on_write NAME N before|after MODULE [ARGS...]

Every write of the package ends with a rename onto the final name
(`boundary_aware.files`). This kills the process just before or just after
the N-th (1-based) rename onto a path whose name is NAME ("*" for any): before
it, the new content is complete under its temporary name only; after it, the
next write has not happened yet.
"""

import os
import pathlib
import runpy
import signal
import sys


def install(name, count, when):
    seen = [0]
    real_replace, real_rename = os.replace, pathlib.Path.rename

    def hit(destination, do):
        if name in ("*", pathlib.Path(destination).name):
            seen[0] += 1
            if seen[0] == count and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
        result = do()
        if name in ("*", pathlib.Path(destination).name) and seen[0] == count and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = lambda src, dst, **kw: hit(dst, lambda: real_replace(src, dst, **kw))
    pathlib.Path.rename = lambda self, target: hit(target, lambda: real_rename(self, target))


if __name__ == "__main__":
    name, count, when, module, *args = sys.argv[1:]
    assert when in ("before", "after"), when
    install(name, int(count), when)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
