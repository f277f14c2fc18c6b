"""Only the data pipeline, the exporter and the runtime may import TensorFlow
(docs/design.md, "Backends"): models, layers, losses and metrics are keras.ops only."""

import ast

from tests.conftest import ROOT, run_python

# tf.data; the SavedModel; device, strategy and op determinism (imported inside functions)
ALLOWED = {"boundary_aware/data_pipeline.py", "boundary_aware/export.py",
           "boundary_aware/runtime.py"}


def _imports_tensorflow(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(n == "tensorflow" or n.startswith("tensorflow.") for n in names):
            return True
    return False


def test_no_model_layer_loss_or_metric_module_imports_tensorflow():
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "boundary_aware").rglob("*.py"))
                 if str(p.relative_to(ROOT)) not in ALLOWED and _imports_tensorflow(p)]
    assert offenders == []


def test_models_and_losses_run_on_jax_without_importing_tensorflow():
    code = """
import sys, numpy as np
from boundary_aware import build_model, losses, metrics
model = build_model("ours", input_shape=(16, 16, 1), base_filters=4, shape_filters=8)
out = model(np.zeros((1, 16, 16, 1), "float32"))
float(losses.dice_loss(np.ones((1, 16, 16, 1)), out["seg"]))
metrics.dice_score(np.ones((4, 4)), np.ones((4, 4)))
print("tensorflow" in sys.modules)
"""
    result = run_python(code, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
