"""The run directory (file names, the checkpoint rule) and the prepared-data manifest."""

import json
import os
import time

import pytest

from boundary_aware.data import Manifest, split_paths
from boundary_aware.run_directory import RunDirectory, scored_checkpoint


def test_checkpoint_follows_the_runs_rule(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.checkpoint() == tmp_path / "final.keras"  # no config: the default rule
    run.write_config({"eval": {"checkpoint": "best", "threshold": 0.4}})
    assert run.checkpoint() == tmp_path / "best.keras"
    assert run.checkpoint("last") == tmp_path / "last.keras"
    assert run.threshold() == 0.4
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        run.checkpoint("worst")
    with pytest.raises(ValueError, match="eval.checkpoint must be one of"):
        scored_checkpoint({"eval": {"checkpoint": "worst"}})


def test_records_round_trip_and_completion(tmp_path):
    run = RunDirectory(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="config.json: not found"):
        run.read_config()
    run.path.mkdir()
    assert run.read_state() is None and run.read_metrics() is None and not run.is_complete()
    assert not RunDirectory.looks_like_one(run.path)
    run.write_state({"epoch": 3, "completed": True})
    assert run.read_state() == {"epoch": 3, "completed": True} and run.is_complete()
    run.checkpoint("last").write_bytes(b"x")
    assert RunDirectory.looks_like_one(run.path)
    assert sorted(p.name for p in run.path.iterdir()) == ["last.keras", "state.json"]


def test_needs_evaluation_when_metrics_are_missing_stale_or_old(tmp_path):
    run = RunDirectory(tmp_path)
    run.write_config({"eval": {"checkpoint": "final"}})
    run.checkpoint("final").write_bytes(b"weights")
    assert run.needs_evaluation()  # no metrics
    run.write_metrics({"per_slice": {}})
    assert run.needs_evaluation()  # written by a version without whole-volume scores
    run.write_metrics({"per_slice": {}, "per_volume": None})
    assert not run.needs_evaluation()
    later = time.time() + 10
    os.utime(run.checkpoint("final"), (later, later))  # retrained after the evaluation
    assert run.needs_evaluation()


def test_manifest_accessors(tmp_path):
    t1c, seg = tmp_path / "c1_t1ce.nii.gz", tmp_path / "c1_seg.nii.gz"
    t1c.write_bytes(b"t")
    seg.write_bytes(b"s")
    from boundary_aware.data import case_record
    record = case_record("c1", "brats2018", [4, 5], (120, 100, 50), (1.0, 2.0, 3.0), 0.1, 9.0,
                         {"t1c": (t1c, "c1/c1_t1ce.nii.gz", "ab"), "seg": (seg, None, "cd")})
    split = {"train": ["c1"], "val": [], "test": []}
    manifest = Manifest.create("0", {"image_size": 60, "region": "tc", "brats_dir": str(tmp_path)},
                               split, {}, {"c1": record})
    manifest.write(tmp_path)
    read = Manifest.read(tmp_path)
    assert read == json.loads((tmp_path / "manifest.json").read_text())
    assert read.image_size == 60 and read.region == "tc" and read.split("train") == ["c1"]
    assert read.slices("train") == [{"case": "c1", "slice": 4}, {"case": "c1", "slice": 5}]
    assert read.spacing("c1") == (1.0, 2.0, 3.0)
    assert read.slice_spacing("c1") == (2.0, pytest.approx(10 / 3))  # 120 px -> 60, 100 -> 60
    assert read.source_file("c1", "t1c") == (tmp_path / "c1" / "c1_t1ce.nii.gz", "ab")
    assert read.convention("c1") == "brats2018"
    assert split_paths(tmp_path, "val") == (tmp_path / "val_images.npy", tmp_path / "val_masks.npy")
