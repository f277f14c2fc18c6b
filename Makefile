# Set-up and entry points. Every target creates the virtual environment first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# tensorflow-cpu installs much faster; a machine with an NVIDIA driver gets the CUDA build.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo tensorflow || echo tensorflow-cpu)
STAMP := $(VENV)/.installed-$(TF_EXTRA)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PYTEST_ARGS ?=

.PHONY: install test test-tf test-jax model-stats bench-metrics clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,$(TF_EXTRA)]"
	rm -f $(VENV)/.installed-*
	touch $@

# The whole suite on TensorFlow, then the backend-agnostic model/loss/layer
# tests again on JAX.
test: test-tf test-jax

test-tf: install
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q $(PYTEST_ARGS)

test-jax: install
	KERAS_BACKEND=jax $(PY) -m pytest -q -m backend $(PYTEST_ARGS)

model-stats: install
	$(PY) -m boundary_aware.model_stats

bench-metrics: install
	$(PY) -m experiments.benchmarks.metrics_speed

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
