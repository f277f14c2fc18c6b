"""Write tests/data/checkpoints/reference_<model>.keras and _io.npz: tiny models and their outputs.

    KERAS_BACKEND=tensorflow python tests/make_reference_outputs.py

Run once, at commit 26b8d22 (before the fused single-channel heads, the
attention gate as a channel reduction and the DSPP pooling branch as a bias:
docs/design.md, "Computing the same thing with fewer bytes"), so that
`tests/test_models.py` can show that the graph of today gives the outputs of
the graph of then, from the same weights. (Run today it would write models
of today's graph, which has nothing to compare with: keep the files.) Every weight,
the batch-norm statistics included, is random, so that no path is an identity.
"""

import sys
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boundary_aware import build_model  # noqa: E402

TINY = {"ours": dict(base_filters=8, shape_filters=8, dspp_rates=(1, 2, 3)),
        "unet": dict(base_filters=4), "vnet": dict(base_filters=4)}


def main():
    out = ROOT / "tests" / "data" / "checkpoints"
    rng = np.random.default_rng(15)
    x = rng.uniform(0, 1, (3, 32, 32, 1)).astype(np.float32)
    for name, kwargs in TINY.items():
        keras.utils.set_random_seed(15)
        model = build_model(name, input_shape=(32, 32, 1), **kwargs)
        for variable in model.non_trainable_variables:  # batch-norm moving statistics
            shape = tuple(variable.shape)
            variable.assign(rng.uniform(0.5, 1.5, shape) if "variance" in variable.path
                            else rng.normal(0, 0.3, shape))
        for variable in model.trainable_variables:  # biases and gammas too, not only kernels
            if "bias" in variable.path or "beta" in variable.path or "gamma" in variable.path:
                variable.assign(rng.normal(1 if "gamma" in variable.path else 0, 0.2,
                                           tuple(variable.shape)))
        model.save(out / f"reference_{name}.keras")
        inference = model(x, training=False)
        training = model(x, training=True)  # last: it moves the batch-norm statistics
        arrays = {"x": x}
        for key in inference:
            arrays[f"{key}_inference"] = keras.ops.convert_to_numpy(inference[key])
            arrays[f"{key}_training"] = keras.ops.convert_to_numpy(training[key])
        np.savez_compressed(out / f"reference_{name}_io.npz", **arrays)
        print(name, {k: float(np.std(v)) for k, v in arrays.items()})


if __name__ == "__main__":
    main()
