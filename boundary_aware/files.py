"""Atomic file writes: a temporary file beside the target, then a rename.

A reader (or a rerun after a crash) sees either the old file or the new one,
never a half-written one.
"""

import os
from pathlib import Path


def atomic_write_text(path, text):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
