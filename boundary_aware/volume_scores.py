"""Whole volumes scored: the source volumes read, segmented, cleaned and scored.

BraTS's protocol, beyond the paper's: every axial slice of each case's source
volumes (the files of the data manifest's sequences, checked against their
recorded SHA-256) is segmented through the code path `predict` runs
(`inference.volume.segment_volume`), and the 3D metrics compare the predicted
regions with the whole label volume at the source spacing. The clean-up rule
of each predictor and region is chosen on the validation volumes
(`choose_postprocessing`, nnU-Net's rule), never on the scored ones. Volumes
are scored on the cores while the next ones are predicted (`scored_in_order`).

Reference: docs/design.md ("Evaluation", "Whole volumes"); Isensee et al.,
"nnU-Net", Nature Methods 2021 (post-processing chosen on held-out data).
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from boundary_aware import postprocess
from boundary_aware.cli import default_workers
from boundary_aware.errors import DataError
from boundary_aware.files import file_sha256
from boundary_aware.inference.flips import NO_FLIPS
from boundary_aware.inference.options import InferenceOptions
from boundary_aware.inference.volume import VolumeInput, segment_volume, with_map_axis
from boundary_aware.nifti import load_channels, load_volume
from boundary_aware.prepared import Manifest
from boundary_aware.regions import region_mask
from boundary_aware.scoring import volume_record

def source_file(manifest: Manifest, case_id: str, kind: str) -> Path:
    """Path of a case's source file (a channel or "seg") from the manifest, checked by SHA-256."""
    path, sha256 = manifest.source_file(case_id, kind)
    if not path.is_file():
        raise DataError(f"{path}: source {kind} file of case {case_id} not found (whole-volume "
                        f"scoring reads the volumes the data was prepared from; pass "
                        f"--noper_volume to skip it)")
    if file_sha256(path) != sha256:
        raise DataError(f"{path}: differs from the file the data was prepared from "
                        f"(SHA-256 mismatch)")
    return path


def volume_cases(manifest: Manifest, split: str):
    """(case id, (X, Y, Z, S) volume of the manifest's sequences, (X, Y, Z, R) bool masks of
    its regions, spacing) of every case of a split."""
    for case_id in manifest.split(split):
        paths = [source_file(manifest, case_id, c) for c in manifest.sequences]
        volume, _, zooms = load_channels(paths, manifest.sequences)
        labels, _, _ = load_volume(source_file(manifest, case_id, "seg"), "seg")
        masks = np.stack([region_mask(labels, manifest.convention(case_id), r) > 0
                          for r in manifest.regions], axis=-1)
        yield case_id, volume, masks, zooms[:3]


def volume_probabilities(predictors, manifest, split, flips=NO_FLIPS):
    """(case id, {name: region probabilities (X, Y, Z, R)}, region masks (X, Y, Z, R),
    spacing) of every case of a split, for `predictors` ({name: a Predictor or an
    ensemble's list}); each source volume is read, and resized to each input size, once
    (`inference.volume.VolumeInput`)."""
    for case_id, volume, ref, spacing in volume_cases(manifest, split):
        data = VolumeInput(volume)
        probs = {name: segment_volume(p, data, outputs=("seg",), flips=flips)["seg"]
                 for name, p in predictors.items()}
        yield case_id, {n: with_map_axis(p) for n, p in probs.items()}, ref, spacing


def scored_in_order(jobs, score, workers: int | None = None):
    """`score(*job)` of every job, in the jobs' order, on `workers` threads (default: one per
    core) while the `jobs` iterator (which reads volumes and predicts) makes the next ones.
    The scores (NumPy and SciPy, which release the GIL) then use the cores a single thread
    leaves idle; at most twice `workers` jobs wait, to bound the memory they hold."""
    workers = workers or default_workers()
    with ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for job in jobs:
            pending.append(pool.submit(score, *job))
            while len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def choose_postprocessing(predictors, manifest, options: InferenceOptions, split="val"):
    """{name: {region: postprocess.choose(...)}}: each predictor's clean-up rule per region,
    chosen on the whole volumes of `split` (the validation split; never the scored one),
    segmented with the options' flips and thresholded at its threshold."""
    per_case = {name: {r: [] for r in manifest.regions} for name in predictors}
    jobs = ((name, region, prob[..., i] > options.threshold, ref[..., i], spacing)
            for _, probs, ref, spacing in volume_probabilities(predictors, manifest, split,
                                                               options.flips)
            for name, prob in probs.items() for i, region in enumerate(manifest.regions))

    def candidates(name, region, pred, ref, spacing):
        return name, region, postprocess.candidate_dice(pred, ref, spacing)

    for name, region, dice in scored_in_order(jobs, candidates):
        per_case[name][region].append(dice)
    return {name: {region: postprocess.choose(cases) for region, cases in regions.items()}
            for name, regions in per_case.items()}


def score_volumes(predictors, manifest, split, options: InferenceOptions, rules=None):
    """{name: whole-volume records} of several predictors ({name: Predictor or list}) on
    `split`, segmented with the options' flips, thresholded at its threshold, each
    region's mask cleaned by its `rules[name]` ({region: rule}; none where absent); the
    volumes are scored on the cores while the next are predicted (`scored_in_order`)."""
    rules = rules or {}
    records = {name: [] for name in predictors}

    def score(name, case_id, prob, ref, spacing):
        pred = np.stack([postprocess.apply(prob[..., i] > options.threshold,
                                           (rules.get(name) or {}).get(r, postprocess.NONE),
                                           spacing)
                         for i, r in enumerate(manifest.regions)], axis=-1)
        return name, {"case": case_id, **volume_record(pred, ref, spacing, manifest.regions)}

    jobs = ((name, case_id, prob, ref, spacing)
            for case_id, probs, ref, spacing in volume_probabilities(predictors, manifest, split,
                                                                     options.flips)
            for name, prob in probs.items())
    for name, record in scored_in_order(jobs, score):
        records[name].append(record)
    return records


def whole_volume_rules(predictors, manifest, options: InferenceOptions, folder,
                       default) -> dict:
    """{name: {region: rule}}: the clean-up chosen on the validation volumes (written to
    FOLDER/postprocess.json, `default` the run's own), or {} where `options` apply none."""
    if not options.postprocess:
        return {}
    choices = choose_postprocessing(predictors, manifest, options)
    postprocess.write(folder, choices, default, "val", options.flips)
    return {name: {region: c["rule"] for region, c in regions.items()}
            for name, regions in choices.items()}
