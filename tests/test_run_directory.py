"""The run directory (file names, the checkpoint rule) and the prepared-data manifest."""

import json
import os
import time

import pytest

from boundary_aware.errors import DataError
from boundary_aware.prepared import load_prepared, Manifest, split_paths
from boundary_aware.errors import FormatError
from boundary_aware.run_directory import (METRICS_FORMAT, RunDirectory, read_metrics_file,
                                          scored_checkpoint)


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
    run.metrics_path.write_text(json.dumps({"per_slice": {}, "per_volume": None}))
    assert run.needs_evaluation()  # written by a version before the format was recorded
    written = run.write_metrics({"per_slice": {}, "per_volume": None})
    assert written["format_version"] == METRICS_FORMAT == run.read_metrics()["format_version"]
    assert not run.needs_evaluation()
    later = time.time() + 10
    os.utime(run.checkpoint("final"), (later, later))  # retrained after the evaluation
    assert run.needs_evaluation()


def test_every_reader_refuses_an_older_metrics_file_saying_what_to_rerun(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    run.metrics_path.write_text(json.dumps({"per_slice": {}, "per_volume": {}}))
    for read in (run.read_metrics, lambda: read_metrics_file(run.metrics_path)):
        with pytest.raises(FormatError, match=r"metrics.json: scores of format 1, written by "
                                              r"another version.*boundary-aware-evaluate "
                                              rf"--workdir={run.path}"):
            read()


def test_manifest_accessors(tmp_path):
    t1c, seg = tmp_path / "c1_t1ce.nii.gz", tmp_path / "c1_seg.nii.gz"
    t1c.write_bytes(b"t")
    seg.write_bytes(b"s")
    from boundary_aware.prepared import case_record
    record = case_record("c1", "brats2018", [4, 5], (120, 100, 50), (1.0, 2.0, 3.0), [0.1], [9.0],
                         {"t1c": (t1c, "c1/c1_t1ce.nii.gz", "ab"),
                          "seg": (seg, "c1/c1_seg.nii.gz", "cd")})
    split = {"train": ["c1"], "val": [], "test": []}
    options = {"image_size": 60, "regions": ["tc"], "sequences": ["t1c"], "context_slices": 0,
               "brats_dir": str(tmp_path)}
    manifest = Manifest.create("0", options, ["t1c"], split, {}, {"c1": record})
    manifest.write(tmp_path)
    read = Manifest.read(tmp_path)
    assert read == json.loads((tmp_path / "manifest.json").read_text())
    older = Manifest.create("0", {"image_size": 60, "region": "tc", "brats_dir": str(tmp_path)},
                            ["t1c"], split, {}, {"c1": record})
    older.write(tmp_path)  # options as versions before the lists wrote them: read as today's
    assert Manifest.read(tmp_path).options == options
    manifest.write(tmp_path)
    assert read.image_size == 60 and read.regions == ("tc",) and read.split("train") == ["c1"]
    assert read.slices("train") == [{"case": "c1", "slice": 4}, {"case": "c1", "slice": 5}]
    assert read.spacing("c1") == (1.0, 2.0, 3.0)
    assert read.slice_spacing("c1") == (2.0, pytest.approx(10 / 3))  # 120 px -> 60, 100 -> 60
    assert read.source_file("c1", "t1c") == (tmp_path / "c1" / "c1_t1ce.nii.gz", "ab")
    assert read.convention("c1") == "brats2018" and read.channels == ("t1c",)
    assert read.sequences == ("t1c",) and read.context_slices == 0
    assert split_paths(tmp_path, "val") == (tmp_path / "val_images.npy", tmp_path / "val_masks.npy")


def test_a_manifest_of_an_older_format_is_refused_saying_what_to_rerun(tmp_path):
    old = {"package_version": "0.1.0", "options": {"image_size": 32}, "split": {}, "cases": {},
           "slices": {}}  # as written before the format was recorded
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"manifest format 1, written by an older version.*"
                                        r"boundary-aware-prepare --brats_dir=\.\.\. "
                                        rf"--out_dir={tmp_path} --image_size=32 --overwrite"):
        Manifest.read(tmp_path)
    with pytest.raises(DataError, match="manifest format 1"):
        load_prepared(tmp_path, "train")


def test_arrays_that_disagree_with_the_manifest_are_refused(tmp_path):
    """A prepared set whose images have two channels while its manifest names one would
    lose a channel (or mix them up) without a word: refused, naming the file."""
    import numpy as np
    split = {"train": ["c1"], "val": [], "test": []}
    record = {"slices": [0, 1]}
    Manifest.create("0", {"image_size": 8}, ["t1c"], split, {}, {"c1": record}).write(tmp_path)
    images, masks = split_paths(tmp_path, "train")
    np.save(images, np.zeros((2, 8, 8, 2), np.float32))
    np.save(masks, np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(DataError, match=r"train_images.npy: shape \(2, 8, 8, 2\), but the "
                                        r"manifest says \(N, 8, 8, 1\): 8 px slices, channels t1c"):
        load_prepared(tmp_path, "train")
    Manifest.create("0", {"image_size": 8}, ["t1c", "flair"], split, {},
                    {"c1": record}).write(tmp_path)
    got, _, meta = load_prepared(tmp_path, "train")
    assert got.shape == (2, 8, 8, 2) and len(meta) == 2
