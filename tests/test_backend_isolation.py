"""Only the data pipeline, the exporter and the runtime may import TensorFlow
(docs/design.md, "Backends"): models, layers, losses and metrics are keras.ops only."""

import ast

import pytest

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


@pytest.mark.slow
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


def _module_graph():
    """{module: modules of this distribution it imports}, from every import statement,
    inside functions too (an import deferred to a function is a dependency all the same)."""
    files = {}
    for package in ("boundary_aware", "data_prep", "experiments"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files
                            else node.module for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _module_graph()
    assert graph["experiments.executors"] >= {"experiments.steps"}  # the graph is read
    cycles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"
    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_finds_a_layer_by_its_name_or_reads_private_logits():
    """Outputs reach the losses and the figures as model outputs or through the model's own
    module (`boundary_aware_net.attention_maps`), never by a layer's name or a tensor's
    private attribute."""
    found = [f"{p.relative_to(ROOT)}: {needle}" for package in ("boundary_aware", "experiments")
             for p in sorted((ROOT / package).rglob("*.py"))
             for needle in (".get_layer(", "_keras_logits") if needle in p.read_text()]
    assert found == []
