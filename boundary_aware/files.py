"""Atomic writes and file hashes, the one place the package does either.

Every write goes to a hidden temporary name beside the target and is renamed
into place, so a reader (or a rerun after a crash) sees the old file or the
new one, never a half-written one. The same holds for folders
(`atomic_folder`) and Keras models (`atomic_save_model`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Iterator


def _temporary(path: Path) -> Path:
    # keep the suffixes: writers such as Keras and nibabel pick the format from them
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` when the block succeeds."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | os.PathLike, records: list[dict],
                     fields: list[str] | None = None) -> None:
    """Write dicts as CSV. Header: `fields`, default every key in order of first
    appearance; a missing value is empty, a list value is joined with ";"."""
    fields = fields if fields is not None else list(dict.fromkeys(k for r in records for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for r in records:
        writer.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v
                         for k, v in r.items()})
    atomic_write_text(path, buffer.getvalue())


def atomic_save_model(model, path: str | os.PathLike) -> None:
    """`model.save(path)` (a .keras file) through a temporary file and a rename."""
    with atomic_file(path) as tmp:
        model.save(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes `path` when the block succeeds.

    On an error the temporary folder is removed and `path` is untouched. An
    existing `path` is replaced only with `replace=True` (moved aside first,
    deleted once the new folder is in place); the caller decides whether that
    folder may be replaced.
    """
    path = Path(path)
    tmp = _temporary(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            if not replace:
                raise FileExistsError(f"{path}: already exists")
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
