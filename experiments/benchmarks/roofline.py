"""Roofline of a training step from XLA's own cost analysis (JAX backend).

    KERAS_BACKEND=jax python -m experiments.benchmarks.roofline [--models=ours,unet,vnet]
        [--batch_sizes=8,32] [--precisions=float32,mixed_bfloat16] [--parts] [--json=FILE]

For each model of the paper profile (240 x 240; ours base width 32, U-Net 64,
V-Net 16) the Keras train step that `model.fit` runs (forward, Eq. 3's
losses, backward, Adam, the loss trackers) is lowered with `jax.jit` and
compiled by XLA for this machine, and `cost_analysis()` gives its FLOPs and
bytes accessed. From those, for an H100 SXM (the figures are `CARDS` below):

    compute time   = FLOPs / peak           (bf16: 989 TFLOP/s dense; float32: TF32, 495)
    memory time    = bytes / 3.35 TB/s
    predicted step = max(compute, memory)   (a lower bound: perfect overlap, peak rates)
    predicted MFU  = 3 x forward conv FLOPs / predicted step / peak

"Intensity" is FLOPs per byte; the card's ridge point is peak / bandwidth
(295 FLOP/B in bf16). The model FLOPs of the MFU are those of
`boundary_aware.model_stats` (2 x multiply-accumulates of the convolutions,
training = 3 x forward), the definition `make bench-train` uses.

With --parts, the boundary-aware network is broken down by part: every
top-level layer's forward and backward pass (its vector-Jacobian product with
respect to its inputs and weights) is compiled alone at its real input shapes
and dtypes, and the layers are summed per part (encoder, shape stream,
fusion, DSPP, decoder), plus the loss and the Adam update. The parts' sum
differs from the whole step by what XLA fuses across layers.

Caveat: the costs are those of the XLA compiler of the machine it runs on.
FLOPs do not depend on it; bytes depend on which operations XLA fuses and
in which precision it runs them. XLA's CPU compiler computes bfloat16
convolutions in float32 (it converts around them), so on a CPU the bf16 rows
move about as many bytes as the float32 rows; they also show, in brackets,
the step and MFU if every tensor moved half the bytes (the most bf16 can
save). `make bench-gpu` runs this script on the GPU, with XLA's GPU compiler.
Prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

# Peak rates of an H100 SXM5 (NVIDIA's data sheet, dense, no sparsity).
CARDS = {"H100 SXM": {"bf16_tflops": 989.4, "tf32_tflops": 494.7, "hbm_tbs": 3.35}}

PARTS = (  # (part, layer-name pattern) of the boundary-aware network, in order
    ("encoder", r"image|stem|down\d|enc\d_"),
    ("shape stream (full resolution)", r"shape_|attention\d|connection\d|edge"),
    ("fusion", r"fusion"),
    ("DSPP", r"dspp"),
    ("decoder", r"up\d|skip\d|dec\d_|seg"),
)


def _xla_cost(compiled) -> dict:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device
        cost = cost[0]
    return {"flops": float(cost.get("flops", 0.0)),
            "bytes": float(cost.get("bytes accessed", 0.0))}


def compile_cost(fn, *args) -> dict:
    """FLOPs and bytes of `fn(*args)` as XLA compiles it (args: arrays or ShapeDtypeStructs)."""
    import jax
    return _xla_cost(jax.jit(fn).lower(*args).compile())


def predict_on(card: dict, precision: str, flops: float, nbytes: float) -> dict:
    """Roofline figures of one step on `card` (see the module docstring)."""
    peak = 1e12 * (card["bf16_tflops"] if "bfloat16" in precision or "float16" in precision
                   else card["tf32_tflops"])
    compute, memory = flops / peak, nbytes / (1e12 * card["hbm_tbs"])
    return {"peak": peak, "compute_s": compute, "memory_s": memory,
            "step_s": max(compute, memory), "bound": "compute" if compute >= memory else "memory"}


def training_model(model_name: str, batch: int, precision: str):
    """(model, data) of the paper profile, compiled as `make bench-train` compiles it."""
    import numpy as np

    from boundary_aware import train as training
    from boundary_aware.batches import plain_batch
    from boundary_aware.channels import PAPER_SEQUENCES
    from experiments.table1 import get_config

    config = get_config(f"{model_name},paper")
    with config.unlocked():
        config.train.batch_size = batch
        config.train.jit_compile = "on"
    channels = len(PAPER_SEQUENCES)
    model = training.build_and_compile(config, precision, channels)
    size = config.data.image_size
    yy, xx = np.mgrid[:size, :size]
    masks = np.broadcast_to(((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2)
                            [None, ..., None], (batch, size, size, 1)).astype(np.uint8)
    images = np.broadcast_to(0.3 + 0.5 * masks, (batch, size, size, channels))
    images = np.ascontiguousarray(images, np.float32)
    _, targets = training.loss_setup(config, model.output_names)
    x, y = plain_batch(images, masks, np.arange(batch), config.loss.edge_width, targets)
    training.build_training_state(model, images, masks, config, targets)
    return model, (x, y)


def train_step_cost(model, data) -> dict:
    """Cost of Keras's own JAX train step (what `fit` runs once per batch)."""
    import jax
    model.make_train_function()
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    spec = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                  (state, data))
    return compile_cost(model.train_step, *spec)


def layer_costs(model, batch: int) -> list[tuple[str, dict]]:
    """Forward + backward cost of every top-level layer alone, at its real shapes."""
    import jax
    costs = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = layer._inbound_nodes[0]
        kwargs = dict(node.arguments.kwargs)
        if layer._call_has_training_arg:
            kwargs["training"] = True
        # as `layer.__call__` would: floating inputs cast to the layer's compute dtype
        inputs = jax.tree_util.tree_map(
            lambda t, layer=layer: jax.ShapeDtypeStruct(
                (batch,) + tuple(t.shape[1:]),
                layer.compute_dtype if "float" in t.dtype else t.dtype),
            node.arguments.args)
        weights = [_spec(v) for v in layer.trainable_variables]
        forward = _functional(layer, kwargs)

        def step(weights, inputs, cotangent, forward=forward):
            # the output is returned too, or XLA drops the forward work the gradient skips
            out, vjp = jax.vjp(forward, weights, inputs)
            return out, vjp(cotangent)
        # the cotangent is an argument: a constant one would be folded away by XLA
        cotangent = jax.eval_shape(forward, weights, inputs)
        costs.append((layer.name, compile_cost(step, weights, inputs, cotangent)))
    return costs


def _spec(variable):
    import jax
    return jax.ShapeDtypeStruct(variable.shape, variable.dtype)


def _functional(layer, kwargs):
    """`layer(*inputs, **kwargs)` as a pure function of (trainable weights, inputs).

    Through `__call__`, not `stateless_call`, so that mixed precision casts
    weights and inputs as it does in the model.
    """
    from keras.src.backend.common.stateless_scope import StatelessScope
    frozen = [v.value for v in layer.non_trainable_variables]

    def forward(weights, inputs):
        mapping = list(zip(layer.trainable_variables, weights))
        mapping += list(zip(layer.non_trainable_variables, frozen))
        with StatelessScope(state_mapping=mapping):
            return layer(*inputs, **kwargs)
    return forward


def loss_and_update_costs(model, data) -> dict:
    """Cost of Eq. 3's losses (with their gradient) and of one Adam update."""
    import jax
    _, y = data
    targets = {name: jax.ShapeDtypeStruct(v.shape, v.dtype) for name, v in y.items()}
    preds = {name: jax.ShapeDtypeStruct(v.shape, "float32") for name, v in y.items()}

    def loss_grad(preds, targets):
        return jax.grad(lambda p: model.compute_loss(x=None, y=targets, y_pred=p))(preds)
    trainable = [_spec(v) for v in model.trainable_variables]
    return {"loss": compile_cost(loss_grad, preds, targets),
            "Adam update": compile_cost(
                lambda o, g, t: model.optimizer.stateless_apply(o, g, t),
                [_spec(v) for v in model.optimizer.variables], trainable, trainable)}


def part_of(layer_name: str) -> str:
    for part, pattern in PARTS:
        if re.match(pattern, layer_name):
            return part
    return "other"


def fmt_row(label: str, flops: float, nbytes: float, card: dict, precision: str,
            model_flops: float | None = None) -> str:
    r = predict_on(card, precision, flops, nbytes)
    mfu = ("" if model_flops is None else
           f" MFU={100 * model_flops / r['step_s'] / r['peak']:5.1f}%")
    if model_flops is not None and "16" in precision and _on_cpu():
        # XLA:CPU computes 16-bit convolutions in float32: its bytes are float32-like
        half = predict_on(card, precision, flops, nbytes / 2)
        mfu += (f" [bytes/2: step>={1e3 * half['step_s']:7.3f}ms "
                f"MFU={100 * model_flops / half['step_s'] / half['peak']:5.1f}%]")
    return (f"{label} GFLOP={flops / 1e9:9.1f} GB={nbytes / 1e9:7.2f} "
            f"FLOP/B={flops / max(nbytes, 1):6.1f} compute={1e3 * r['compute_s']:7.3f}ms "
            f"memory={1e3 * r['memory_s']:7.3f}ms step>={1e3 * r['step_s']:7.3f}ms "
            f"({r['bound']}-bound){mfu}")


def _on_cpu() -> bool:
    import jax
    return jax.devices()[0].platform == "cpu"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ours,unet,vnet")
    parser.add_argument("--batch_sizes", default="8,32")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--parts", action="store_true",
                        help="break the boundary-aware network down by part")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    import jax
    import keras

    from boundary_aware.model_stats import forward_flops
    if keras.backend.backend() != "jax":
        parser.error("the roofline needs KERAS_BACKEND=jax")
    card_name, card = next(iter(CARDS.items()))
    print(f"XLA cost analysis on {jax.devices()[0].platform} (jax {jax.__version__}); "
          f"predicted for an {card_name}: {card['bf16_tflops']} TFLOP/s bf16, "
          f"{card['tf32_tflops']} TFLOP/s TF32, {card['hbm_tbs']} TB/s", flush=True)
    records = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for precision in args.precisions.split(","):
                start = time.perf_counter()
                model, data = training_model(name, batch, precision)
                model_flops = 3 * forward_flops(model) * batch
                built = time.perf_counter()
                cost = train_step_cost(model, data)
                print(f"  (built in {built - start:.0f} s, compiled in "
                      f"{time.perf_counter() - built:.0f} s)", flush=True)
                label = f"{name:5s} batch={batch:3d} {precision:14s} train step"
                print(fmt_row(label, cost["flops"], cost["bytes"], card, precision,
                              model_flops), flush=True)
                record = {"model": name, "batch": batch, "precision": precision,
                          "model_flops": model_flops, **cost}
                if args.parts and name == "ours":
                    record["parts"] = print_parts(model, data, batch, precision, card)
                records.append(record)
                keras.backend.clear_session()
    if args.json:
        from boundary_aware.files import atomic_write_text
        atomic_write_text(args.json, json.dumps({"card": card_name, **card, "rows": records},
                                                indent=1))


def print_parts(model, data, batch, precision, card) -> dict:
    """Print and return the per-part costs of the boundary-aware network."""
    parts: dict[str, dict] = {}
    for layer_name, cost in layer_costs(model, batch):
        part = parts.setdefault(part_of(layer_name), {"flops": 0.0, "bytes": 0.0, "layers": {}})
        part["flops"] += cost["flops"]
        part["bytes"] += cost["bytes"]
        part["layers"][layer_name] = cost
    for label, cost in loss_and_update_costs(model, data).items():
        parts[label] = {**cost, "layers": {}}
    total = {k: sum(p[k] for p in parts.values()) for k in ("flops", "bytes")}
    for label, p in parts.items():
        share = f"{100 * p['bytes'] / total['bytes']:4.1f}% of bytes"
        print(fmt_row(f"    {label:32s}", p["flops"], p["bytes"], card, precision) + " " + share)
    print(fmt_row(f"    {'sum of the parts':32s}", total["flops"], total["bytes"], card,
                  precision), flush=True)
    return parts


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported
    main()
