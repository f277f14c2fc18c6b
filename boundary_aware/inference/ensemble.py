"""The mean of several models' and flips' probabilities, and their uncertainty (standard deviation).

An ensemble (several runs or exports of one input contract) and the test-time
flips are averaged the same way: every (model, flip) pair gives one copy of
the probabilities, each flip undone before it is counted, and the copies are
averaged with Welford's running mean, which also gives their standard
deviation (the uncertainty map) without keeping every copy.

Reference: Isensee et al., "nnU-Net", Nature Methods 2021 (ensembles, mirroring);
docs/design.md ("Whole volumes").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from boundary_aware.errors import DataError
from boundary_aware.inference.flips import NO_FLIPS, flipped

UNCERTAINTY = "_uncertainty"  # the suffix of an output's standard deviation over the copies


def averaged(predictors, slices: np.ndarray, outputs: Sequence[str] | None = None,
             flips: Sequence[str] = NO_FLIPS, uncertainty: bool = False) -> dict:
    """{output: mean probability} of `slices` ((N, H, W, C), the models' input) over every
    predictor and every flip of `flips`, for every output (or those of `outputs`); maps of
    one channel lose that axis. With `uncertainty`, also `<output>_uncertainty`: the
    standard deviation over the copies (0 for one model without flips)."""
    count, mean, m2 = 0, {}, {}
    for predictor in predictors:
        for flip in flips:
            out = {name: flipped(np.asarray(value, np.float32), flip)
                   for name, value in predictor(flipped(slices, flip)).items()
                   if outputs is None or name in outputs}
            out = {name: v[..., 0] if v.shape[-1] == 1 else v for name, v in out.items()}
            if mean and set(out) != set(mean):
                raise DataError(f"the ensemble's models have different outputs "
                                f"({sorted(mean)} and {sorted(out)})")
            count += 1
            for name, prob in out.items():  # Welford's running mean and squared deviations
                if name not in mean:
                    mean[name], m2[name] = prob.copy(), np.zeros_like(prob)
                    continue
                delta = prob - mean[name]
                mean[name] += delta / count
                m2[name] += delta * (prob - mean[name])
    maps = dict(mean)
    if uncertainty:
        maps.update({f"{name}{UNCERTAINTY}": np.sqrt(np.maximum(m2[name], 0) / count)
                     for name in mean})
    return maps
