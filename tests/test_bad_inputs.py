"""The bad-input suite: one row per kind of odd input or fault a user can cause.

Each row of `KINDS` is (family, command line, expected outcome, text), and runs the
installed command in its own process against a shared world of files (`world`):
synthetic cases, a prepared dataset with a user's notes inside, model files of other
shapes, damaged run files, links and duplicate cases. Tokens in the command line:
WORLD (the world's folder), NEW (a fresh path for this row's output); CASE and REAL name
T1c files (a synthetic case of the world's, a real BraTS sample).
Outcomes: "error": exit status 1, exactly one `error:` line holding the text, no
traceback; "done": exit status 0 with the text on the console. Either way no file of the
world is changed or deleted (lock files aside), and an error creates nothing at NEW.

A newcomer adds a kind in one line. `python -m tests.test_bad_inputs` prints the counts
per family and outcome that the README's "Reliability" section quotes.
"""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from boundary_aware.console import is_notice

pytestmark = pytest.mark.slow  # every test here starts processes

ROOT = Path(__file__).resolve().parents[1]  # not from conftest: printing the counts needs no Keras

CASE = "WORLD/cases/Synth_0000/Synth_0000_t1ce.nii.gz"
REAL = "tests/data/brats_samples/BraTS2013_pat0005/BraTS2013_pat0005_t1ce.nii.gz"
TRAIN = "boundary-aware-train --config=experiments/table1.py:"

# a Keras backend whose package this environment lacks (torch, unless an optional extra
# such as `make bench-cpu`'s installed it)
_ABSENT = next((name for name in ("torch", "openvino") if importlib.util.find_spec(name) is None),
               None)

KINDS = [
    # family: options (flags and their values)
    ("options", "boundary-aware-evaluate --workdir=/no/such/run", "error",
     "/no/such/run: no such run"),
    ("options", f"boundary-aware-predict --model=/no/such/model.keras --input={REAL} "
     "--output=NEW/x.nii.gz", "error", "/no/such/model.keras"),
    ("options", "boundary-aware-predict --model=x --input=y --output=z --threshold=abc", "error",
     "flag --threshold=abc"),
    ("options", f"boundary-aware-predict --model=x --input={REAL} --output=NEW/z.nii.gz "
     "--threshold=2", "error", "--threshold must be between 0 and 1"),
    ("options", "boundary-aware-prepare --brats_dir=/no/such/brats --out_dir=NEW", "error",
     "/no/such/brats: not a directory"),
    ("options", "boundary-aware-prepare --brats_dir=tests/data/brats_samples --out_dir=NEW "
     "--image_size=40 --models=ours,unet", "error", "unet needs a multiple of 16"),
    ("options", "boundary-aware-export --workdir=/no/such/run --out=NEW", "error", "/no/such/run"),
    ("options", "boundary-aware-prepare --brats_dir=tests/data/brats_samples --out_dir=NEW "
     "--sequences=t1c,dwi", "error", "--sequences must name distinct MRI sequences"),
    ("options", "boundary-aware-prepare --brats_dir=tests/data/brats_samples --out_dir=NEW "
     "--regions=tc,ncr", "error", "--regions must name distinct tumor regions"),
    ("options", "boundary-aware-synthetic --out_dir=NEW --sequences=t1c,t1c", "error",
     "must name distinct MRI sequences"),
    # family: config (training's settings, checked before anything is created)
    ("config", f"{TRAIN}unet,demo --workdir=NEW --config.train.epochz=3", "error",
     "'epochz' Did you mean \"epochs\""),
    ("config", f"{TRAIN}unet,demo --workdir=NEW --config.data.prepared_dir=/no/such/data",
     "error", "/no/such/data/manifest.json: no prepared"),
    ("config", f"{TRAIN}unet,demo --workdir=NEW --config.train.epochs=0", "error",
     "train.epochs = 0: must be an integer >= 1"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.loss.edge_bce_reduction=meen", "error",
     "loss.edge_bce_reduction = 'meen': must be one of ('mean', 'sum', 'scaled_mean')"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.data.pipeline=tfdata", "error",
     "data.pipeline = 'tfdata': must be one of"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.data.augment.rotate_p=1.5", "error",
     "rotate_p must be in [0, 1], got 1.5"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.model.kwargs.fusion=nearest", "error",
     "fusion must be one of ('area', 'bilinear')"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.eval.checkpoint=worst", "error",
     "eval.checkpoint = 'worst': must be one of"),
    ("config", f"{TRAIN}unet,demo --workdir=NEW --config.loss.weights.edge_dice=0.5", "error",
     "edge_dice has weight 0.5 but the model has no"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.data.regions=ncr", "error",
     "data.regions = 'ncr': must name distinct tumor regions"),
    ("config", f"{TRAIN}ours,demo --workdir=NEW --config.data.context_slices=-1", "error",
     "data.context_slices = -1: must be an integer in [0, 8]"),
    # family: overwrite (what --overwrite may replace, inputs apart from outputs)
    ("overwrite", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=WORLD/prepared "
     "--image_size=32 --slices_per_case=3 --seed=1 --overwrite --workers=1", "error",
     "also holds files this package did not write (notes.txt)"),
    ("overwrite", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=WORLD "
     "--image_size=32 --workers=1", "error", "the output holds the input --brats_dir"),
    ("overwrite", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=WORLD/cases/prep "
     "--image_size=32 --workers=1", "error", "the output lies inside the input --brats_dir"),
    ("overwrite", "boundary-aware-synthetic --out_dir=WORLD/cases --num_cases=1 --shape=48,48,24",
     "error", "--overwrite"),
    # family: discovery (links, names, duplicates)
    ("discovery", "boundary-aware-predict --model=WORLD/models/tiny.keras --input=WORLD/linked "
     "--output=NEW --tta=none", "done", "a link to a folder outside the given folder"),
    ("discovery", "boundary-aware-predict --model=WORLD/models/tiny.keras --input=WORLD/dup "
     "--output=NEW --tta=none", "error", "case id Synth_0001 also found at"),
    ("discovery", "boundary-aware-prepare --brats_dir=WORLD/dup --out_dir=NEW --image_size=32 "
     "--workers=1", "error", "case id Synth_0001 also found at"),
    ("discovery", "boundary-aware-predict --model=WORLD/models/tiny.keras --input=WORLD/renamed "
     "--output=NEW --tta=none", "error", "not in a folder named Synth_0001"),
    # family: files (damaged or odd files, headers, run records)
    ("files", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=NEW --image_size=32 "
     "--split_file=WORLD/numbers_split.json --workers=1", "error",
     "numbers_split.json: case ids must be strings"),
    ("files", "boundary-aware-prepare --brats_dir=WORLD/degenerate --out_dir=NEW "
     "--image_size=32 --workers=1", "error", "affine (voxel-to-world transform) is degenerate"),
    ("files", "boundary-aware-predict --model=WORLD/models/tiny.keras "
     "--input=WORLD/degenerate/Synth_0002/Synth_0002_t1ce.nii.gz --output=NEW/x.nii.gz "
     "--tta=none", "error", "Synth_0002_t1ce.nii.gz: its affine"),
    ("files", "boundary-aware-evaluate --workdir=WORLD/damaged_run", "error",
     "config.json: the run's config is damaged or unreadable"),
    ("files", "boundary-aware-export --workdir=WORLD/damaged_state --out=NEW", "error",
     "state.json: the training state is damaged or unreadable"),
    ("files", "boundary-aware-train --config=experiments/table1.py:unet,demo --workdir=NEW "
     "--config.data.prepared_dir=WORLD/damaged_manifest", "error",
     "manifest.json: not a readable manifest"),
    # family: models (files of another shape, or code)
    ("models", f"boundary-aware-predict --model=WORLD/models/single.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "gives the output(s) one unnamed tensor"),
    ("models", f"boundary-aware-predict --model=WORLD/models/dynamic.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "takes input of shape (N, ?, ?, 1)"),
    ("models", f"boundary-aware-predict --model=WORLD/models/renamed_output.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "gives the output(s) prob"),
    ("models", f"boundary-aware-predict --model=WORLD/models/three.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "takes 3 input channels, but nothing recorded"),
    ("models", f"boundary-aware-predict --model=WORLD/models/lambda.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "lambda.keras: refused: the model holds Python code"),
    ("models", f"boundary-aware-predict --model=WORLD/models/corrupt.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "corrupt.keras: cannot load this .keras model"),
    ("models", f"boundary-aware-predict --model=WORLD/models/pickle.keras --input={CASE} "
     "--output=NEW/x.nii.gz", "error", "pickle.keras: not a .keras model"),
    # family: sizes (impossible sizes and counts, refused before any work)
    ("sizes", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=NEW --image_size=102400",
     "error", "beyond 1024 pixels"),
    ("sizes", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=NEW --workers=100000",
     "error", "--workers must be an integer from 1 to"),
    ("sizes", f"boundary-aware-predict --model=WORLD/models/tiny.keras --input={CASE} "
     "--output=NEW/x.nii.gz --batch_size=1000000", "error", "--batch_size must be from 1 to"),
    ("sizes", "boundary-aware-train --config=experiments/table1.py:unet,demo --workdir=NEW "
     "--config.train.batch_size=100000000", "error", "train.batch_size = 100000000"),
    ("sizes", "boundary-aware-prepare --brats_dir=WORLD/cases --out_dir=NEW --context_slices=99",
     "error", "--context_slices must be in [0, 8]"),
    # family: system (the operating system's and the environment's failures)
    ("system", f"boundary-aware-predict --model=WORLD/models/tiny.keras --input={CASE} "
     f"--output=NEW/{'x' * 300}.nii.gz --tta=none", "error", "name too long"),
    ("system", f"boundary-aware-predict --model=WORLD/models/tiny.keras --input={CASE} "
     "--output=WORLD/a_file/x.nii.gz --tta=none", "error", "a_file"),
    ("system", "KERAS_BACKEND=jax boundary-aware-export --workdir=WORLD/run --out=NEW", "error",
     "a SavedModel is exported on the TensorFlow backend, and Keras runs on jax"),
    ("system", "KERAS_BACKEND=nonsense boundary-aware-predict --model=x --input=y --output=z",
     "error", "KERAS_BACKEND=nonsense is not a Keras backend"),
]
if _ABSENT:  # else every backend is installed, and there is nothing to refuse
    KINDS.append(("system", f"KERAS_BACKEND={_ABSENT} boundary-aware-evaluate --workdir=x",
                  "error", f"{_ABSENT} is not installed here"))


def _save_models(folder: Path) -> None:
    """Model files a user might be handed: a plain one of ours in shape, and others."""
    import pickle
    import zipfile

    import keras
    folder.mkdir()

    def conv(inputs):
        return keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, {"seg": conv(inputs)}).save(folder / "tiny.keras")
    keras.Model(inputs, conv(inputs)).save(folder / "single.keras")
    keras.Model(inputs, {"prob": conv(inputs)}).save(folder / "renamed_output.keras")
    dynamic = keras.Input((None, None, 1))
    keras.Model(dynamic, {"seg": conv(dynamic)}).save(folder / "dynamic.keras")
    three = keras.Input((32, 32, 3))
    keras.Model(three, {"seg": conv(three)}).save(folder / "three.keras")
    keras.Model(inputs, {"seg": keras.layers.Lambda(lambda x: x * 2.0)(inputs)}).save(
        folder / "lambda.keras")
    with zipfile.ZipFile(folder / "corrupt.keras", "w") as archive:
        archive.writestr("config.json", "{ this is not JSON")
    (folder / "pickle.keras").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))


def build_world(root: Path) -> Path:
    """The files every row runs against (module docstring)."""
    import nibabel as nib

    from data_prep import synthetic
    from data_prep.prepare_brats import prepare
    synthetic.generate(root / "cases", 3, seed=7, shape=(48, 48, 24))
    prepare(root / "cases", root / "prepared", slices_per_case=3, image_size=32,
            log=lambda *a: None)
    (root / "prepared" / "notes.txt").write_text("a user's notes beside the data\n")
    _save_models(root / "models")
    # beside a case, a case folder reached through a link that leads outside the given folder
    shutil.copytree(root / "cases" / "Synth_0001", root / "linked" / "Synth_0001")
    os.symlink(root / "cases" / "Synth_0000", root / "linked" / "Synth_0000")
    # one case id in two subfolders
    for part in ("a", "b"):
        shutil.copytree(root / "cases" / "Synth_0001", root / "dup" / part / "Synth_0001")
    # files in a folder not named after their case
    shutil.copytree(root / "cases" / "Synth_0001", root / "renamed" / "patient_one")
    # a case whose T1c header has a degenerate affine
    shutil.copytree(root / "cases" / "Synth_0002", root / "degenerate" / "Synth_0002")
    path = root / "degenerate" / "Synth_0002" / "Synth_0002_t1ce.nii.gz"
    image = nib.load(str(path))
    header = image.header.copy()
    header["srow_x"], header["sform_code"], header["qform_code"] = [0, 0, 0, 0], 1, 0
    nib.save(nib.Nifti1Image(image.get_fdata(dtype="float32"), None, header), str(path))
    # run folders with damaged records
    for name, files in (("damaged_run", {"config.json": "{ not json"}),
                        ("damaged_state", {"config.json": "{}", "state.json": "[1, 2"})):
        (root / name).mkdir()
        for file, text in files.items():
            (root / name / file).write_text(text)
        (root / name / "final.keras").write_bytes(b"")
    shutil.copytree(root / "prepared", root / "damaged_manifest")
    (root / "damaged_manifest" / "manifest.json").write_text('{"format_version": 2,')
    (root / "a_file").write_text("a file where a folder is asked for\n")
    (root / "numbers_split.json").write_text('{"train": [0, "Synth_0001"], "test": [2]}')
    return root


def snapshot(root: Path) -> dict:
    """{relative path: SHA-256} of every file under `root` (links as their target's name)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if name.endswith(".lock"):
                continue
            key = str(path.relative_to(root))
            found[key] = (f"link:{os.readlink(path)}" if path.is_symlink()
                          else hashlib.sha256(path.read_bytes()).hexdigest())
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = build_world(tmp_path_factory.mktemp("world"))
    return root, snapshot(root)


def run_kind(command: str, root: Path, new: Path) -> subprocess.CompletedProcess:
    words = command.replace("WORLD", str(root)).replace("NEW", str(new)).split()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    while "=" in words[0] and not words[0].startswith("-"):  # VAR=value before the command
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    script = Path(sys.executable).parent / words[0]
    return subprocess.run([str(script), *words[1:]], capture_output=True, text=True,
                          timeout=180, cwd=ROOT, env=env)


@pytest.mark.parametrize("family, command, outcome, text", KINDS,
                         ids=[f"{k[0]}-{i}" for i, k in enumerate(KINDS)])
def test_a_bad_input_is_told_in_one_line_and_nothing_is_lost(family, command, outcome, text,
                                                             world, tmp_path):
    root, before = world
    new = tmp_path / "new"
    result = run_kind(command, root, new)
    console = result.stdout + result.stderr
    assert "Traceback" not in console, console[-3000:]
    assert not [line for line in console.splitlines() if is_notice(line)], console[-3000:]
    if outcome == "error":
        assert result.returncode == 1, console[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and text in errors[0], console[-3000:]
        assert not new.exists() or not any(new.iterdir()), sorted(new.rglob("*"))
    else:
        assert result.returncode == 0 and text in console, console[-3000:]
    assert snapshot(root) == before  # no file of the world changed, none deleted or added


def counts() -> dict:
    """{family: {outcome: kinds}} of `KINDS`."""
    table = {}
    for family, _, outcome, _ in KINDS:
        table.setdefault(family, {}).setdefault(outcome, 0)
        table[family][outcome] += 1
    return table


if __name__ == "__main__":
    total = 0
    for family, outcomes in counts().items():
        print(f"{family}: " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))
        total += sum(outcomes.values())
    print(f"{total} kinds in tests/test_bad_inputs.py")
