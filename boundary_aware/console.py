"""A quiet console for the package's commands: TensorFlow's start-up notices stay off it.

TensorFlow prints informational notices from C++ while it is imported (that
oneDNN is on, which CPU instructions it was built for), before its logging
honours `TF_CPP_MIN_LOG_LEVEL`, and its Python logger warns when Keras
traces a predict function again for another input signature (evaluation
runs whole batches and single slices through the same model). A user reads
both as something wrong. In a process started as one of the package's
commands (`started_as_command`), `quiet_tensorflow` arranges that:

* the first `import tensorflow`, whenever it happens, runs with the process's
  standard error captured; afterwards every captured line is written back
  except TensorFlow's informational notices (`is_notice`), so warnings and
  errors still show;
* the retracing warning is filtered from TensorFlow's logger.

Set `BOUNDARY_AWARE_TF_NOTICES=1` to see everything. Such a process also
checks `KERAS_BACKEND` before Keras is imported (`check_backend`): an unknown
or uninstalled backend is one `error:` line naming the installed ones, not a
traceback from inside Keras. Library use (importing the package in your own
program or in the tests) changes nothing.

Reference: docs/usage.md ("Command-line tools").
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

PACKAGES = ("boundary_aware", "data_prep", "experiments")
COMMAND_PREFIX = "boundary-aware-"
NOTICES = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written "
               r"to STDERR$"),
    re.compile(r"^I\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "),  # C++ INFO lines (absl's format)
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the "
               r"appropriate compiler flags\.$"),  # the second line of cpu_feature_guard's
)
RETRACING = "triggered tf.function retracing"


# Keras 3's backends and the module each needs
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy",
            "openvino": "openvino"}


def backend_problem(name: str | None) -> str | None:
    """Why Keras cannot start with backend `name` (KERAS_BACKEND), naming the installed
    backends; None when it can (or when `name` is unset: Keras's default)."""
    if not name:
        return None
    installed = [b for b, module in BACKENDS.items() if importlib.util.find_spec(module)]
    if name not in BACKENDS:
        return (f"KERAS_BACKEND={name} is not a Keras backend; the installed ones are "
                f"{', '.join(installed) or 'none'}")
    if name not in installed:
        return (f"KERAS_BACKEND={name}: {BACKENDS[name]} is not installed here; the installed "
                f"backends are {', '.join(installed) or 'none'}")
    return None


def check_backend() -> None:
    """In a command: one `error:` line and exit status 1 when KERAS_BACKEND names a backend
    Keras cannot start (`backend_problem`)."""
    problem = backend_problem(os.environ.get("KERAS_BACKEND"))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(1)


def is_notice(line: str) -> bool:
    """Whether a line of standard error is one of TensorFlow's informational notices."""
    return any(pattern.match(line.rstrip("\n")) for pattern in NOTICES)


def started_as_command(argv=None) -> bool:
    """Whether this process is one of the package's commands: a `boundary-aware-*` console
    script, or `python -m` of a module of this distribution."""
    argv = list(sys.orig_argv if argv is None else argv)
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1].split(".")[0] in PACKAGES
        if not arg.startswith("-"):  # the script: a console script is named after its command
            return Path(arg).name.startswith(COMMAND_PREFIX)
    return False


@contextlib.contextmanager
def filtered_stderr():
    """Capture the process's standard error (file descriptor 2, so C++ output too) for the
    block, then write back every line but TensorFlow's notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_notice(line))
            if kept:
                os.write(2, kept.encode("utf-8"))


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` inside `filtered_stderr`."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr():
            self._loader.exec_module(module)
        logging.getLogger("tensorflow").addFilter(_RetracingFilter())

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, as the other finders do, and wraps its loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Keep TensorFlow's notices off the console (module docstring); idempotent."""
    if os.environ.get("BOUNDARY_AWARE_TF_NOTICES") == "1":
        return
    if "tensorflow" in sys.modules:
        logging.getLogger("tensorflow").addFilter(_RetracingFilter())
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
