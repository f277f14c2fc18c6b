#!/bin/sh
# make bench-gpu: experiments/benchmarks/bench_gpu.py with KERAS_BACKEND=jax, on a machine
# with or without .venv. The GPU machine has Python with JAX and PyTorch but no network and
# no TensorFlow: there Keras and the other pure-Python packages come from the wheels that
# `make gpu-wheels` puts in .whl/ (carried with the working tree), installed under /tmp/site.
set -e
PY=${BENCH_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import keras, nibabel, ml_collections" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "bench-gpu: Keras, nibabel or ml_collections is missing and .whl/ holds no wheels" \
             "(run make gpu-wheels where there is a network)" >&2
        exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
exec "$PY" -m experiments.benchmarks.bench_gpu "$@"
