"""Atomic writes and file hashes, the one place the package does either.

Every write goes to a hidden temporary name beside the target and is renamed
into place, so a reader (or a rerun after a crash) sees the old file or the
new one, never a half-written one. The same holds for folders
(`atomic_folder`) and Keras models (`atomic_save_model`). A folder is replaced
only when it holds nothing but this package's own files (`check_only_ours`),
and an output never overlaps an input (`check_apart`).
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

from boundary_aware.errors import DataError, LockedError


def _temporary(path: Path) -> Path:
    # keep the suffixes: writers such as Keras and nibabel pick the format from them
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` left by killed writers on this machine.

    A writer killed before its rename leaves `.tmp-PID-NAME` (or a folder
    `.old-PID-NAME` moved aside) beside `path`; those whose process no longer
    runs are deleted. Returns what was removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for kind in ("tmp", "old"):
        for leftover in path.parent.glob(f".{kind}-*-{path.name}"):
            pid = leftover.name[len(kind) + 2:-len(path.name) - 1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` when the block succeeds."""
    path = Path(path)
    remove_stale_temporaries(path)
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


def atomic_save_model(model, path: str | os.PathLike,
                      previous: str | os.PathLike | None = None) -> str:
    """`model.save(path)` (a .keras file) through a temporary file and a rename;
    returns the file's SHA-256. With `previous`, an existing `path` is moved
    there once the new file is complete, so one good copy exists at every moment."""
    path = Path(path)
    with atomic_file(path) as tmp:
        model.save(tmp)
        digest = file_sha256(tmp)
        if previous is not None and path.exists():
            os.replace(path, previous)
    return digest


def foreign_files(folder: str | os.PathLike, ours) -> list[str]:
    """The files (and links) under `folder` that are not ours: their paths relative to
    it, sorted; `ours` is a set of such relative paths ("a.npy", "variables/x"). Folders
    are not listed (an empty one holds nothing to lose); links are not followed."""
    folder, ours = Path(folder), set(ours)
    found = []
    for parent, dirs, names in os.walk(folder):
        here = Path(parent)
        names = names + [d for d in dirs if (here / d).is_symlink()]
        found += [str((here / n).relative_to(folder)) for n in names]
    return sorted(f for f in found if f not in ours)


def check_only_ours(folder: str | os.PathLike, ours, what: str, instead: str) -> None:
    """DataError naming the files of `folder` that are not in `ours` (`foreign_files`): a
    folder about to be replaced must hold only what this package wrote there. `what`
    says what the folder is, `instead` what the user may do."""
    foreign = foreign_files(folder, ours)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                         else "")
        raise DataError(f"{folder}: {what}, but also holds files this package did not write "
                        f"({shown}); --overwrite replaces only its own files, so nothing was "
                        f"replaced: {instead}")


def check_apart(output: str | os.PathLike, inputs: dict) -> None:
    """DataError when the folder `output` is one of `inputs` ({flag: path}; None entries are
    skipped), lies inside one, or holds one: writing or replacing it could change an input."""
    out = Path(output).resolve()
    for flag, path in inputs.items():
        if path is None:
            continue
        source = Path(path).resolve()
        if out == source or out in source.parents or source in out.parents:
            where = ("is" if out == source else "holds" if out in source.parents
                     else "lies inside")
            raise DataError(f"{output}: the output {where} the input {flag}={path}; choose an "
                            f"output folder apart from every input")


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False, ours=None,
                  what: str = "the output",
                  instead: str = "move them elsewhere, or choose another output") -> Iterator[Path]:
    """Yield an empty temporary folder that becomes `path` when the block succeeds.

    On an error the temporary folder is removed and `path` is untouched. An
    existing `path` is replaced only with `replace=True` and only when every file
    in it is one of `ours` (relative paths; `check_only_ours`, checked again just
    before the swap, with `what` and `instead` for its message): it is moved aside,
    then deleted once the new folder is in place, so what is deleted is only what
    this package wrote there.
    """
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            if not replace:
                raise FileExistsError(f"{path}: already exists")
            check_only_ours(path, ours or (), what, instead)
            old = path.with_name(f".old-{os.getpid()}-{path.name}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable_folder(folder: str | os.PathLike) -> None:
    """DataError unless `folder` is a folder, or can be created as one, and can be written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{existing}: cannot write here (the output goes to {folder})")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_lock(lock_path: Path, what: str) -> int:
    """A descriptor of the lock file, created if needed, never through a symbolic link;
    DataError naming the path when it is a link, a folder or cannot be written."""
    import errno
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP or lock_path.is_symlink():
            why = "is a symbolic link; a lock is never opened through a link (remove it)"
        elif err.errno == errno.EISDIR or lock_path.is_dir():
            why = "is a folder, not a lock file (remove or rename it)"
        else:
            why = (f"cannot create the lock file ({err.strerror}); it guards {what}, which "
                   f"must be writable by this user")
        raise DataError(f"{lock_path}: {why}") from None


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` for the block; the file exists only meanwhile.

    A second holder, in this process or another, gets `LockedError` naming
    the first one's PID and host at once, instead of waiting. The lock is the
    operating system's (flock), so a killed holder releases it (its file stays
    behind and is reused). The file is opened without following a symbolic
    link, so a lock path that is a link never truncates what it points to; a
    link, a folder or a place that cannot be written is a `DataError` naming it.
    """
    import fcntl
    import socket
    lock_path = Path(lock_path)
    while True:
        fd = _open_lock(lock_path, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LockedError(f"{what}: in use by {holder} (lock {lock_path}); wait for it to "
                              f"finish, or use another folder") from None
        try:  # the holder before us may have removed the file between our open and flock
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock
