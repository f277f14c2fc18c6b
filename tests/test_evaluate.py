"""Evaluation: whole-volume scoring, honest Hausdorff summaries, the checkpoint rule."""

import json
import shutil

import keras
import nibabel as nib
import numpy as np
import pytest

from boundary_aware import metrics, postprocess
from boundary_aware.console import RETRACING, is_notice
from boundary_aware.errors import DataError
from boundary_aware.evaluate import evaluate, evaluate_ensemble
from boundary_aware.inference.flips import DEFAULT_TTA, tta_flips
from boundary_aware.predict import predict_path
from boundary_aware.run_directory import METRICS_FORMAT
from boundary_aware.scoring import score_volume, summarize
from tests.conftest import ROOT, tiny_prepared, module_code, run_python

TINY_RUN = ["--config.model.kwargs.base_filters=4", "--config.data.image_size=32",
            "--config.train.batch_size=4", "--config.train.epochs=30", "--config.eval.batch_size=8",
            "--config.train.jit_compile=off", "--config.train.learning_rate=0.01"]


def test_whole_volume_metrics_count_a_false_positive_slice():
    ref = np.zeros((20, 20, 10), bool)
    ref[5:10, 5:10, 2:5] = True  # tumor on slices 2, 3, 4
    pred = ref.copy()
    pred[15:17, 15:17, 8] = True  # a 2 x 2 false positive on slice 8, which has no tumor
    record = score_volume(pred, ref, (1.0, 1.0, 2.0), "tc")
    assert (record["fp_slices"], record["tumor_slices"], record["pred_slices"]) == (1, 3, 4)
    # BraTS: the lesion found exactly, the blob a false positive (far beyond its dilation)
    brats = record["regions"]["tc"]
    assert (brats["lesion_dice"], brats["lesion_hd95"]) == (0.5, 187.0)
    assert brats["dice"] == record["dice"] and brats["hd95"] == record["hd95"]
    assert record["slices"] == 10 and record["empty"] == "none"
    assert record["dice"] == pytest.approx(2 * 75 / (75 + 79))
    # the blob's farthest voxel (16, 16, 8) to the nearest tumor voxel (9, 9, 4): 7, 7, 4 * 2 mm
    assert record["hd"] == pytest.approx(np.sqrt(7 ** 2 + 7 ** 2 + 8 ** 2))
    empty = score_volume(np.zeros((240, 240, 155), bool), np.pad(ref, ((0, 220), (0, 220), (0, 145))),
                         (1.0, 1.0, 1.0), "tc")
    assert empty["hd"] == empty["hd95"] == pytest.approx(373.13, abs=0.01)
    assert empty["dice"] == 0.0 and empty["fp_slices"] == 0 and empty["empty"] == "pred"
    assert empty["regions"]["tc"]["hd95"] == 373.13
    assert (empty["regions"]["tc"]["lesion_dice"], empty["regions"]["tc"]["lesion_hd95"]) == \
        (0.0, 374.0)


def test_honest_hausdorff_summary_by_hand():
    records = [{"empty": "none", "dice": 0.8, "jaccard": 0.7, "hd": 2.0, "hd95": 1.0},
               {"empty": "none", "dice": 0.6, "jaccard": 0.4, "hd": 4.0, "hd95": 3.0},
               {"empty": "pred", "dice": 0.0, "jaccard": 0.0, "hd": 339.4, "hd95": 339.4},
               {"empty": "none", "dice": 0.9, "jaccard": 0.8, "hd": 6.0, "hd95": 5.0}]
    s = summarize(records)
    assert s["n"] == 4 and s["empty"] == {"both": 0, "pred": 1, "ref": 0}
    assert s["hd"]["mean"] == pytest.approx((2 + 4 + 339.4 + 6) / 4)
    assert s["hd"]["median"] == pytest.approx(5.0) and s["hd95"]["median"] == pytest.approx(4.0)
    assert s["hd"]["nonempty_mean"] == pytest.approx(4.0) and s["hd"]["nonempty_n"] == 3
    assert s["hd95"]["nonempty_mean"] == pytest.approx(3.0)
    assert s["dice"]["std"] == pytest.approx(np.std([0.8, 0.6, 0.0, 0.9], ddof=1))  # sample std
    assert "fp_slices" not in s
    assert summarize([{**r, "fp_slices": 2} for r in records])["fp_slices"] == 8


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny U-Net trained for 30 epochs (with batch norm) on synthetic data."""
    root = tmp_path_factory.mktemp("evaluate")
    tiny_prepared(root)
    args = ["--config=experiments/table1.py:unet,demo", f"--workdir={root / 'run'}",
            f"--config.data.prepared_dir={root / 'prepared'}", *TINY_RUN]
    code = module_code("boundary_aware.train", args)
    result = run_python(code, env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_evaluate_scores_slices_whole_volumes_and_both_checkpoints(trained_run, tmp_path):
    run = trained_run / "run"
    result = evaluate(run)
    assert json.loads((run / "metrics.json").read_text()) == json.loads(json.dumps(result))
    assert result["format_version"] == METRICS_FORMAT
    assert result["checkpoint"] == "final.keras" and result["checkpoint_rule"] == "final"
    assert set(result["checkpoints"]) == {"final", "best"} and result["epoch"] == 30
    model = keras.saving.load_model(run / "final.keras", compile=False)
    assert result["params"] == model.count_params()
    manifest = json.loads((trained_run / "prepared" / "manifest.json").read_text())
    test_cases = manifest["split"]["test"]
    assert [v["case"] for v in result["volumes"]] == test_cases
    assert result["per_volume"]["n"] == len(test_cases) and result["per_slice"]["n"] == 4 * len(test_cases)
    assert result["selected_slices"]["n"] == len(test_cases) and "per_case" not in result
    assert result["per_volume"]["fp_slices"] == sum(v["fp_slices"] for v in result["volumes"])
    # the whole-volume score is predict's mask against the whole label volume
    case = test_cases[0]
    t1c = trained_run / "brats" / case / f"{case}_t1ce.nii.gz"
    predict_path(run, t1c, tmp_path / "mask.nii.gz")
    mask = np.asanyarray(nib.load(tmp_path / "mask.nii.gz").dataobj) > 0
    labels = np.asanyarray(nib.load(trained_run / "brats" / case / f"{case}_seg.nii.gz").dataobj)
    expected = metrics.segmentation_metrics(mask, np.isin(labels, (1, 4)), (1.0, 1.0, 1.0))
    for name in ("dice", "hd", "hd95"):
        assert result["volumes"][0][name] == pytest.approx(expected[name])
    assert result["volumes"][0]["slices"] == 24
    # the clean-up chosen on the validation volumes is recorded, applied, and predict uses it
    rule = postprocess.read(run)
    assert result["whole_volume"] == {"flips": list(tta_flips(DEFAULT_TTA)), "postprocess": rule}
    summary = predict_path(run, t1c, tmp_path / "mask2.nii.gz")
    assert summary["postprocess"] == postprocess.label(rule["tc"])
    choice = json.loads((run / postprocess.FILE).read_text())["checkpoints"]["final"]
    assert choice["validation"]["tc"]["n"] == len(manifest["split"]["val"])


@pytest.mark.slow
def test_the_config_or_the_flag_can_turn_the_clean_up_off(trained_run, tmp_path):
    shutil.copytree(trained_run / "run", tmp_path / "run")
    (tmp_path / "run" / postprocess.FILE).unlink(missing_ok=True)
    result = evaluate(tmp_path / "run", use_postprocess=False, tta="none")
    assert result["whole_volume"] == {"flips": ["none"], "postprocess": None}
    assert not (tmp_path / "run" / postprocess.FILE).exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["eval"]["postprocess"] = False
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert evaluate(tmp_path / "run", tta="none")["whole_volume"]["postprocess"] is None


@pytest.mark.slow
def test_an_ensemble_of_two_copies_scores_as_the_run(trained_run, tmp_path):
    run = trained_run / "run"
    single = evaluate(run)
    shutil.copytree(run, tmp_path / "copy")
    got = evaluate_ensemble([run, tmp_path / "copy"], tmp_path / "ensemble")
    assert got["members"] == [str(run), str(tmp_path / "copy")]
    assert json.loads((tmp_path / "ensemble" / "metrics.json").read_text())["variant"] == \
        "unet_ensemble"
    assert got["whole_volume"] == single["whole_volume"]
    for mine, theirs in zip(got["volumes"], single["volumes"]):
        assert mine["dice"] == pytest.approx(theirs["dice"], abs=1e-6)
    assert got["per_slice"]["dice"]["mean"] == pytest.approx(single["per_slice"]["dice"]["mean"])
    config = json.loads((tmp_path / "copy" / "config.json").read_text())
    config["data"]["prepared_dir"] = str(tmp_path / "elsewhere")
    (tmp_path / "copy" / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="same prepared data"):
        evaluate_ensemble([run, tmp_path / "copy"], tmp_path / "ensemble2")


@pytest.mark.slow
def test_the_rule_does_not_pick_an_early_checkpoint_with_unsettled_statistics(trained_run):
    """best.keras from an early epoch whose batch-norm statistics are still the initial ones
    (mean 0, variance 1) but whose validation Dice happened to be the highest."""
    run = trained_run / "run"
    early = keras.saving.load_model(run / "final.keras", compile=False)
    for layer in early.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape))
            layer.moving_variance.assign(np.ones(layer.moving_variance.shape))
    early.save(run / "best.keras")
    state = json.loads((run / "state.json").read_text())
    state.update(best_epoch=1, best_val_dice=0.99)
    (run / "state.json").write_text(json.dumps(state))
    result = evaluate(run, per_volume=False)
    assert result["checkpoint"] == "final.keras" and result["epoch"] == 30
    best = result["checkpoints"]["best"]
    assert best["epoch"] == 1
    assert best["per_slice"]["dice"]["mean"] < result["per_slice"]["dice"]["mean"] - 0.05
    assert result["per_volume"] is None and result["volumes"] is None
    # the other rule stays available
    assert evaluate(run, checkpoint="best", per_volume=False)["checkpoint"] == "best.keras"


@pytest.mark.slow
def test_whole_volume_scoring_checks_the_source_files(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run / "run", copy)
    config = json.loads((copy / "config.json").read_text())
    prepared = tmp_path / "prepared"
    shutil.copytree(trained_run / "prepared", prepared)
    config["data"]["prepared_dir"] = str(prepared)
    (copy / "config.json").write_text(json.dumps(config))
    manifest = json.loads((prepared / "manifest.json").read_text())
    case = manifest["split"]["test"][0]
    manifest["cases"][case]["files"]["seg"]["sha256"] = "0" * 64
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    from boundary_aware.errors import DataError
    from boundary_aware.files import file_sha256
    with pytest.raises(DataError, match="manifest.json: is not the prepared data .* was trained "
                                        "on"):
        evaluate(copy)  # the run records the manifest it trained on
    state = json.loads((copy / "state.json").read_text())
    state["data_manifest_sha256"] = file_sha256(prepared / "manifest.json")
    (copy / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match=f"{case}_seg.nii.gz: differs from the file"):
        evaluate(copy)


@pytest.mark.slow
def test_a_changed_array_is_refused_naming_it(trained_run, tmp_path):
    import numpy as np

    from boundary_aware.errors import DataError
    from boundary_aware.prepared import load_prepared
    prepared = tmp_path / "prepared"
    shutil.copytree(trained_run / "prepared", prepared)
    masks = np.load(prepared / "test_masks.npy")
    np.save(prepared / "test_masks.npy", np.zeros_like(masks))  # zeroed behind our back
    with pytest.raises(DataError, match="test_masks.npy: changed since the data was prepared"):
        load_prepared(prepared, "test")
    assert load_prepared(prepared, "train")[0].size  # the untouched arrays still load


@pytest.mark.slow
def test_the_evaluate_command_prints_its_scores_without_tensorflows_notices(trained_run, tmp_path):
    """With the filter off (BOUNDARY_AWARE_TF_NOTICES=1) the same command shows TensorFlow's
    start-up notices, so the check would see them come back."""
    import os
    import subprocess
    import sys
    copy = tmp_path / "run"
    shutil.copytree(trained_run / "run", copy)
    args = [sys.executable, "-m", "boundary_aware.evaluate", f"--workdir={copy}"]
    env = {k: v for k, v in os.environ.items() if k != "BOUNDARY_AWARE_TF_NOTICES"}
    env["KERAS_BACKEND"] = "tensorflow"
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "whole volumes" in quiet.stdout
    assert RETRACING not in quiet.stderr
    assert not any(is_notice(line) for line in quiet.stderr.splitlines()), quiet.stderr
    loud = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**env, "BOUNDARY_AWARE_TF_NOTICES": "1"})
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert any(is_notice(x) for x in loud.stderr.splitlines())


def test_volumes_scored_on_several_threads_keep_their_order():
    """`scored_in_order` returns every job's score in the jobs' order, however long each
    takes, and reads the jobs lazily (at most twice the workers waiting)."""
    import time
    from boundary_aware.volume_scores import scored_in_order

    made = []

    def jobs():
        for i in range(12):
            made.append(i)
            yield i, 0.02 * ((7 * i) % 5)

    def score(i, pause):
        time.sleep(pause)
        return i * i

    results = scored_in_order(jobs(), score, workers=2)
    assert next(results) == 0 and len(made) <= 6
    assert list(results) == [i * i for i in range(1, 12)]
