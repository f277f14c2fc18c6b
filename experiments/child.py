"""Run a module as a child process that dies with its parent: the experiments' runs.

    python -m experiments.child PARENT_PID MODULE [ARGS...]

On Linux the child asks the kernel for SIGKILL when its parent dies
(`PR_SET_PDEATHSIG`), so a lost Ray worker takes its training process with
it and the retried task finds the run directory free. This is done in the
child itself rather than with `subprocess`'s `preexec_fn`, which is not safe
in a parent with threads (Ray workers, TensorFlow).
"""

import os
import runpy
import signal
import sys


def main() -> None:
    parent, module, *args = sys.argv[1:]
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent):  # the parent died before the request
            sys.exit(1)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
