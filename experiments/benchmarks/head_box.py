"""What running a trained model on the head's box alone changes, per margin.

    python -m experiments.benchmarks.head_box --model=RUN_OR_KERAS --cases=DIR[,DIR...]
        [--margins=0.03125,0.0625,0.125 --precisions=float32,bfloat16]

`predict --crop=head` runs the model on the box around the head
(`inference.in_head_box`). Ours pools over the whole slice (its DSPP's image
branch) and reads far beyond any margin, so the box does not give the whole
slice's probabilities; how far it moves them can only be measured on a trained
model. For every case folder (BraTS layout: the model's sequences and a `seg`
label file), every margin (a share of the slice's side, `inference.HEAD_BOX_MARGIN`)
and every precision, it prints: the share of the slice's pixels the box holds,
the tumor voxels whose mask differs from the whole slice's in float32, the largest
probability difference, and the Dice of both masks against the case's labels
(the region the model segments; no clean-up, no flips). The model runs in float32
as the reference whatever it was trained in.

Reference: docs/performance.md ("The head's box").
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np


def case_files(folder: Path, sequences) -> tuple[list[Path], Path, str]:
    """A BraTS case folder's volumes of `sequences`, in order, its label file and its
    file layout."""
    from data_prep.brats import discover_images
    case = next(c for c in discover_images(folder.parent, sequences, {})
                if c.case_id == folder.name)
    seg = next(p for p in folder.iterdir() if p.name.endswith(("_seg.nii.gz", "_seg.nii")))
    return case.channel_files(sequences), seg, case.layout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a training workdir or a .keras file")
    parser.add_argument("--cases", required=True, help="case folders, comma-separated")
    parser.add_argument("--margins", default="0.03125,0.0625,0.125")
    parser.add_argument("--precisions", default="float32,bfloat16")
    args = parser.parse_args(argv)
    from boundary_aware import runtime
    from boundary_aware.data import detect_convention, region_mask
    from boundary_aware.inference import (VolumeInput, head_box, in_head_box, load_predictor,
                                          segment_volume, size_divisor_of, sized_passes, twin)
    from boundary_aware.metrics import dice_score
    from boundary_aware.model_files import load_keras_model
    from boundary_aware.nifti import load_channels, load_volume
    from boundary_aware.run_directory import RunDirectory

    path = Path(args.model)
    path = RunDirectory(path).checkpoint() if path.is_dir() else path
    with tempfile.TemporaryDirectory() as tmp:  # the model in float32, through predict's loader
        reference = Path(tmp) / "float32.keras"
        twin(load_keras_model(path), "float32").save(reference)
        base = {p: load_predictor(reference, precision=p) for p in args.precisions.split(",")}
    batch = runtime.inference_batch_size()
    models = {p: twin(load_keras_model(path), "mixed_bfloat16" if p == "bfloat16" else "float32")
              for p in base}
    divisor = size_divisor_of(models["float32" if "float32" in models else next(iter(models))])
    region = base[next(iter(base))].regions[0]
    print(f"{path}: size divisor {divisor}, region {region}; {os.cpu_count()} CPU cores",
          flush=True)
    for folder in (Path(c) for c in args.cases.split(",")):
        sequences = base[next(iter(base))].sequences
        files, seg, layout = case_files(folder, sequences)
        volume, _, _ = load_channels(files, sequences)
        labels, _, _ = load_volume(seg, "mask")
        truth = region_mask(labels, detect_convention(layout, np.unique(labels), seg), region)
        data = VolumeInput(volume)
        size = base[next(iter(base))].input_shape[0]
        reference_prob = segment_volume(base["float32"], data, outputs=["seg"])["seg"] \
            if "float32" in base else None
        for precision, predictor in base.items():
            prob = segment_volume(predictor, data, outputs=["seg"])["seg"]
            settings = [("whole", None, prob)]
            for margin in (float(m) for m in args.margins.split(",")):
                box = head_box(data.slices(size), divisor, margin)
                share = 1.0 if box is None else \
                    (box[0][1] - box[0][0]) * (box[1][1] - box[1][0]) / size ** 2
                cropped = replace(predictor, predict=in_head_box(
                    sized_passes(models[precision], batch, runtime.inference_streams()),
                    divisor, margin))
                settings.append((f"box {margin:.4g}", share,
                                 segment_volume(cropped, data, outputs=["seg"])["seg"]))
            ref = reference_prob if reference_prob is not None else prob
            for name, share, p in settings:
                mask, ref_mask = p > 0.5, ref > 0.5
                print(f"{folder.name:18s} {precision:8s} {name:12s} "
                      f"pixels {1.0 if share is None else share:5.1%}  "
                      f"mask differs in {int(np.count_nonzero(mask != ref_mask)):6d} of "
                      f"{int(ref_mask.sum()):6d}  largest probability difference "
                      f"{float(np.abs(p - ref).max()):.3f}  Dice {dice_score(mask, truth):.4f} "
                      f"(whole slice, float32: {dice_score(ref_mask, truth):.4f})", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    main()
