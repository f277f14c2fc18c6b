"""Inference: models' slice predictors, and whole volumes segmented with them.

The one code path from models to probabilities that `predict` (the command),
`evaluate` (whole-volume scores) and the benchmarks use, one module a job:

* `options`: `InferenceOptions`, every setting of inference in one object;
* `sources`: the table of model sources (a training workdir, a `.keras` file,
  an exported SavedModel) and `load_predictor(s)`, which loads through it;
* `predictor`: `Predictor`, a forward pass over slices with its input contract,
  batched, several batches at a time on CPUs;
* `rebuild`: a Keras model rebuilt in another precision or for another slice size;
* `head_box`: the forward pass run on the box around the head (`--crop=head`);
* `flips`: the test-time mirror flips; `ensemble`: the mean over models and flips;
* `volume`: a whole volume segmented inside the head and resized back.

Reference: docs/design.md ("Evaluation", "Whole volumes"); docs/deployment.md;
nnU-Net (Isensee et al. 2021) for mirroring at test time and ensembles.
"""
