"""Does every term of Eq. 3 pull? Gradient shares of the three loss terms.

    python -m boundary_aware.loss_balance --config=experiments/table1.py:ours,demo [--workdir=RUN]
        [--batches=4] [--json=FILE]

For each weighted term of Eq. 3 (`losses.TERMS`: l1 Dice(seg), l2 Dice(edge),
l3 EdgeBCE(edge)) it prints the norm of the term's gradient with respect to the shared
trainable weights (the weights every term reaches: the encoder and the shape
stream; the decoder serves only `seg`, the edge head only `edge`) and its
share of the three norms together, averaged over a few unaugmented training
batches, in training mode (batch statistics), as one training step sees
them. It does so at initialization (a fresh model built with the config's
seed) and, with --workdir, for that run's scored checkpoint, under each
reduction of Eq. 5: the reductions differ by a constant factor
(`losses.bce_scale`: 1, H x W, 20), so one gradient gives all three. The BCE is
computed from the model's edge logits output.

TensorFlow and JAX backends (the gradient is backend code, like a trainer's).

Reference: Hatamizadeh et al. 2019, Eq. 3-5; docs/design.md ("Losses").
"""

import json
from pathlib import Path

import keras
import numpy as np

from boundary_aware import losses
from boundary_aware.config import check_config
from boundary_aware.edge_targets import edge_target_numpy
from boundary_aware.epochs import epoch_order
from boundary_aware.prepared import load_prepared, Manifest
from boundary_aware.regions import parse_regions
from boundary_aware.model_files import load_keras_model
from boundary_aware.models import build_model
from boundary_aware.run_directory import RunDirectory

TERMS = losses.TERMS
UNIT_WEIGHTS = {term.name: 1.0 for term in TERMS}


def _unit_terms(outputs, seg, edge):
    """The Eq. 3 terms with unit weights and the pixel-mean BCE (from the logits), stacked
    in `TERMS` order."""
    terms = losses.loss_terms({"mask": seg, "edge": edge}, outputs, UNIT_WEIGHTS,
                              options=losses.LossOptions(bce_reduction="mean"))
    return [terms[term.name] for term in TERMS]


def term_gradients(model, x, seg, edge):
    """(values (T,), [per-variable gradients (T, *shape)]) of the unit-weight terms."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from boundary_aware.data_pipeline import tf  # the module that owns TensorFlow
        with tf.GradientTape(persistent=True) as tape:
            terms = _unit_terms(model(x, training=True), seg, edge)
        grads = [tape.gradient(t, model.trainable_variables) for t in terms]
        del tape
        values = np.array([float(t) for t in terms])
        per_var = [np.stack([np.zeros(v.shape, np.float32) if g[i] is None else
                             keras.ops.convert_to_numpy(g[i]) for g in grads])
                   for i, v in enumerate(model.trainable_variables)]
        return values, per_var
    if backend == "jax":
        import jax
        import jax.numpy as jnp
        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def terms_of(params):
            outputs, _ = model.stateless_call(params, frozen, x, training=True)
            return jnp.stack(_unit_terms(outputs, seg, edge))
        values = np.asarray(terms_of(trainable))
        return values, [np.asarray(g) for g in jax.jacrev(terms_of)(trainable)]
    raise NotImplementedError(f"loss_balance supports the tensorflow and jax backends, "
                              f"not {backend}")


def measure(model, images, masks, edge_width=2, batch_size=8):
    """Unit-weight term values and gradient norms on the shared weights, per batch averaged.

    Returns {"values": (T,), "norms": (T,), "shared": [variable paths], "parameters": n}
    in `TERMS` order, unweighted and for the pixel-mean BCE; `shares` applies weights and
    reductions.
    """
    grads_sum, values_sum, n_batches = None, np.zeros(len(TERMS)), 0
    for start in range(0, len(images) - batch_size + 1, batch_size):
        x = images[start:start + batch_size]
        seg = masks[start:start + batch_size].astype(np.float32)
        edge = edge_target_numpy(seg, edge_width)
        values, per_var = term_gradients(model, x, seg, edge)
        values_sum += values
        grads_sum = per_var if grads_sum is None else [a + b for a, b in zip(grads_sum, per_var)]
        n_batches += 1
    if n_batches == 0:
        raise ValueError(f"need at least one batch of {batch_size} slices, got {len(images)}")
    grads = [g / n_batches for g in grads_sum]
    variables = model.trainable_variables
    reached = [np.abs(g.reshape(len(TERMS), -1)).max(axis=1) > 0 for g in grads]
    shared = [i for i, r in enumerate(reached) if r.all()]
    norms = np.sqrt([sum(float(np.sum(grads[i][t] ** 2)) for i in shared)
                     for t in range(len(TERMS))])
    return {"values": values_sum / n_batches, "norms": norms,
            "shared": [variables[i].path for i in shared],
            "parameters": int(sum(np.prod(variables[i].shape) for i in shared))}


def shares(measured, weights, reduction, image_shape):
    """Weighted values, gradient norms and shares of the terms under `reduction`
    (`weights`: {term: weight})."""
    weights = losses.check_weights(weights)
    scale = np.array([weights[t.name] * (losses.bce_scale(reduction, image_shape)
                                         if t.reduced else 1.0) for t in TERMS])
    norms = measured["norms"] * scale
    total = norms.sum()
    return {"values": (measured["values"] * scale).tolist(), "norms": norms.tolist(),
            "shares": (norms / total if total > 0 else np.zeros(len(TERMS))).tolist()}


def loss_balance(config, workdir=None, batches=4):
    """Shares at initialization (and for `workdir`'s scored checkpoint), per reduction."""
    check_config(config)
    if len(parse_regions(config.data.regions)) > 1:
        raise ValueError(f"data.regions = {config.data.regions}: the loss balance measures the "
                         f"terms of one region's map (the paper's); train several regions "
                         f"and compare them with make beyond-paper")
    images, masks, _ = load_prepared(config.data.prepared_dir, "train")
    batch_size = int(config.train.batch_size)
    order = epoch_order(len(images), config.train.seed, 0)[:batches * batch_size]
    images, masks = images[order], masks[order]
    weights = losses.check_weights(config.loss.weights.to_dict())
    size = (config.data.image_size, config.data.image_size)
    channels = len(Manifest.read(config.data.prepared_dir).channels)
    keras.utils.set_random_seed(config.train.seed)
    models = {"initialization": build_model(config.model.name, input_shape=size + (channels,),
                                            **config.model.kwargs.to_dict())}
    if workdir is not None:
        path = RunDirectory(workdir).checkpoint()
        models[f"trained ({path})"] = load_keras_model(path)
    report = {"config": f"{config.variant},{config.profile}", "weights": weights,
              "configured_reduction": config.loss.edge_bce_reduction,
              "batches": batches, "batch_size": batch_size, "image_size": list(size),
              "models": {}}
    for name, model in models.items():
        if "edge" not in model.output_names:
            raise ValueError(f"{config.model.name}: no edge output, so no Eq. 3 terms to balance")
        measured = measure(model, images, masks, config.loss.edge_width, batch_size)
        report["models"][name] = {
            "shared_tensors": len(measured["shared"]), "shared_parameters": measured["parameters"],
            "reductions": {r: shares(measured, weights, r, size) for r in losses.BCE_REDUCTIONS}}
    return report


def render(report):
    weights = ", ".join(f"{name} {w:g}" for name, w in report["weights"].items())
    lines = [f"loss balance of {report['config']}: weights {weights}, "
             f"{report['batches']} batches of {report['batch_size']} slices at "
             f"{report['image_size'][0]} x {report['image_size'][1]}; configured BCE reduction "
             f"{report['configured_reduction']!r}", "",
             f"{'model':<16} {'reduction':<12} {'term':<14} {'value':>10} {'grad norm':>11} "
             f"{'share':>7}"]
    for name, m in report["models"].items():
        lines.append(f"{name}: gradients on {m['shared_tensors']} shared weight tensors "
                     f"({m['shared_parameters']:,} parameters)")
        for reduction, r in m["reductions"].items():
            for term, value, norm, share in zip((t.symbol for t in TERMS), r["values"],
                                                r["norms"], r["shares"]):
                lines.append(f"{'':<16} {reduction:<12} {term:<14} {value:>10.4g} {norm:>11.3e} "
                             f"{100 * share:>6.1f}%")
    return "\n".join(lines)


def main(argv):
    from absl import flags
    del argv
    f = flags.FLAGS
    from boundary_aware.cli import exit_on
    from boundary_aware.errors import DataError
    with exit_on(DataError, ValueError, NotImplementedError, FileNotFoundError):
        report = loss_balance(f.config, f.workdir, f.batches)
    print(render(report))
    if f.json:
        Path(f.json).write_text(json.dumps(report, indent=1))


def define_flags() -> None:
    from absl import flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Experiment config file (and variant).")
    flags.DEFINE_string("workdir", None, "A trained run: also measure its scored checkpoint.")
    flags.DEFINE_integer("batches", 4, "Training batches to average over.")
    flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
    flags.mark_flags_as_required(["config"])


def cli() -> None:
    """Console entry point `boundary-aware-loss-balance`."""
    from boundary_aware.cli import run_absl
    run_absl(define_flags, main)


if __name__ == "__main__":
    cli()
