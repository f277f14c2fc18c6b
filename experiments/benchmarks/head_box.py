"""What running a trained model on the head's box alone changes, per margin.

    python -m experiments.benchmarks.head_box --model=RUN_OR_KERAS --cases=DIR[,DIR...]
        [--margins=0.03125,0.0625,0.125 --precisions=float32,bfloat16]

`predict --crop=head` runs the model on the box around the head
(`inference.head_box.in_head_box`). Ours pools over the whole slice (its DSPP's image
branch) and reads far beyond any margin, so the box does not give the whole
slice's probabilities; how far it moves them can only be measured on a trained
model. For every case folder (BraTS layout: the model's sequences and a `seg`
label file), every margin (a share of the slice's side, `inference.head_box.HEAD_BOX_MARGIN`)
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
from dataclasses import replace
from pathlib import Path

import numpy as np


def case_files(folder: Path, sequences) -> tuple[list[Path], Path, str]:
    """A BraTS case folder's volumes of `sequences`, in order, its label file and its
    file layout."""
    from boundary_aware.brats_cases import discover_images
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
    from boundary_aware.channels import input_channels
    from boundary_aware.regions import detect_convention, recorded_regions, region_mask
    from boundary_aware.inference.head_box import head_box, in_head_box
    from boundary_aware.inference.predictor import keras_predictor
    from boundary_aware.inference.rebuild import rebuild, rebuilt_passes, size_divisor_of
    from boundary_aware.inference.volume import segment_volume, VolumeInput
    from boundary_aware.metrics import dice_score
    from boundary_aware.model_files import load_keras_model
    from boundary_aware.nifti import load_channels, load_volume
    from boundary_aware.run_directory import RunDirectory

    path = Path(args.model)
    run = RunDirectory(path) if path.is_dir() else None
    path = run.checkpoint() if run else path
    state = (run.read_state() or {}) if run else {}
    source = load_keras_model(path)
    channels = input_channels(source.input_shape[1:], state.get("input_channels"), str(path))
    regions = recorded_regions(state.get("regions"), str(path))
    batch, streams = runtime.inference_batch_size(), runtime.inference_streams()
    runtime.share_cores_between(streams)
    # float32 first: the reference every other setting is compared with
    precisions = ["float32"] + [p for p in args.precisions.split(",") if p != "float32"]
    models = {p: rebuild(source, "mixed_bfloat16" if p == "bfloat16" else "float32")
              for p in precisions}
    whole = {p: keras_predictor(m, batch, streams, channels, regions)
             for p, m in models.items()}
    passes = {p: rebuilt_passes(m, batch, streams) for p, m in models.items()}  # kept per size
    first = whole["float32"]
    divisor, size, region = size_divisor_of(source), first.input_shape[0], first.regions[0]
    print(f"{path}: size divisor {divisor}, region {region}; {os.cpu_count()} CPU cores",
          flush=True)
    for folder in (Path(c) for c in args.cases.split(",")):
        files, seg, layout = case_files(folder, first.sequences)
        volume, _, _ = load_channels(files, first.sequences)
        labels, _, _ = load_volume(seg, "mask")
        truth = region_mask(labels, detect_convention(layout, np.unique(labels), seg), region)
        data = VolumeInput(volume)
        ref = None
        for precision in precisions:
            settings = [("whole", 1.0, segment_volume(whole[precision], data,
                                                      outputs=["seg"])["seg"])]
            ref = settings[0][2] if ref is None else ref
            for margin in (float(m) for m in args.margins.split(",")):
                box = head_box(data.slices(size), divisor, margin)
                share = 1.0 if box is None else \
                    (box[0][1] - box[0][0]) * (box[1][1] - box[1][0]) / size ** 2
                cropped = replace(whole[precision],
                                  predict=in_head_box(passes[precision], divisor, margin))
                settings.append((f"box {margin:.4g}", share,
                                 segment_volume(cropped, data, outputs=["seg"])["seg"]))
            ref_mask = ref > 0.5
            for name, share, prob in settings:
                mask = prob > 0.5
                print(f"{folder.name:18s} {precision:8s} {name:12s} pixels {share:5.1%}  "
                      f"mask differs in {int(np.count_nonzero(mask != ref_mask)):6d} of "
                      f"{int(ref_mask.sum()):6d}  largest probability difference "
                      f"{float(np.abs(prob - ref).max()):.3f}  Dice {dice_score(mask, truth):.4f} "
                      f"(whole slice, float32: {dice_score(ref_mask, truth):.4f})", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    main()
