"""Atomic writes: the target holds the old content or the new one, never a part."""

import csv
from pathlib import Path

import pytest

from boundary_aware.errors import DataError
from boundary_aware.files import (atomic_folder, atomic_write_bytes, atomic_write_csv,
                                  atomic_write_text, file_sha256)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")
    original = Path.write_bytes

    def crash_midway(self, data):
        original(self, data[:2])  # part of the data reaches the disk, then the crash
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_atomic_folder_replaces_only_when_asked_and_cleans_up(tmp_path):
    out = tmp_path / "export"
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_folder(out) as tmp:
            (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_folder(out, replace=True, ours={"a.txt"}) as tmp:
            (tmp / "c.txt").write_text("3")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with pytest.raises(DataError, match=r"export: the export, but also holds files this package "
                                        r"did not write \(a.txt\)"):
        with atomic_folder(out, replace=True, what="the export") as tmp:  # a.txt is not ours
            (tmp / "d.txt").write_text("4")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_folder(out, replace=True, ours={"a.txt"}) as tmp:
        (tmp / "d.txt").write_text("4")
    assert sorted(p.name for p in out.iterdir()) == ["d.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no hidden leftovers


def test_csv_and_hash(tmp_path):
    path = tmp_path / "t.csv"
    atomic_write_csv(path, [{"a": 1, "b": [1, 2]}, {"a": 2, "c": "x"}])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"a": "1", "b": "1;2", "c": ""}, {"a": "2", "b": "", "c": "x"}]
    atomic_write_bytes(tmp_path / "abc", b"abc")
    assert file_sha256(tmp_path / "abc") == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 example


# ---- locks -----------------------------------------------------------------

def test_a_lock_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    import os

    from boundary_aware.errors import DataError
    from boundary_aware.files import exclusive_lock
    target = tmp_path / "notes.txt"
    target.write_text("a user's notes")
    link = tmp_path / ".run.lock"
    os.symlink(target, link)
    with pytest.raises(DataError, match=r"\.run\.lock: is a symbolic link"):
        with exclusive_lock(link, "the run"):
            pass
    assert target.read_text() == "a user's notes" and link.is_symlink()
    dangling = tmp_path / ".other.lock"
    os.symlink(tmp_path / "nowhere", dangling)  # a link to nothing is not followed either
    with pytest.raises(DataError, match="is a symbolic link"):
        with exclusive_lock(dangling, "the run"):
            pass
    assert not (tmp_path / "nowhere").exists()


def test_a_lock_that_is_a_folder_is_refused(tmp_path):
    from boundary_aware.errors import DataError
    from boundary_aware.files import exclusive_lock
    (tmp_path / ".run.lock").mkdir()
    (tmp_path / ".run.lock" / "kept").write_text("x")
    with pytest.raises(DataError, match="is a folder, not a lock file"):
        with exclusive_lock(tmp_path / ".run.lock", "the run"):
            pass
    assert (tmp_path / ".run.lock" / "kept").read_text() == "x"


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_lock_in_a_read_only_folder_says_so(tmp_path):
    from boundary_aware.errors import DataError
    from boundary_aware.files import exclusive_lock
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(DataError, match="cannot create the lock file .* must be writable"):
            with exclusive_lock(folder / ".lock", str(folder)):
                pass
    finally:
        folder.chmod(0o755)
