"""Makes TensorFlow warn that it retraced a predict function, as evaluation does: run as
`python -m experiments.child PID tests.retracing` by tests/test_cli.py."""

import sys

import numpy as np

from boundary_aware.models import build_model

models = [build_model("unet", input_shape=(32, 32, 1), base_filters=4) for _ in range(2)]
x = np.zeros((60, 32, 32, 1), "float32")
for model in models:  # whole batches through tf.data ...
    model.predict(x, batch_size=16, verbose=0)
for model in models:  # ... then single batches: another input signature each time
    for _ in range(3):
        model.predict_on_batch(x[:16])
print("done", file=sys.stderr)
