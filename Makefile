# Set-up and entry points. Every target creates the virtual environment first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# tensorflow-cpu installs much faster; a machine with an NVIDIA driver gets the CUDA build.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo tensorflow || echo tensorflow-cpu)
STAMP := $(VENV)/.installed-$(TF_EXTRA)
export TF_CPP_MIN_LOG_LEVEL ?= 3
PYTEST_ARGS ?=
# pytest-xdist workers: the suite is dominated by single-threaded graph compiles.
TEST_WORKERS ?= 2

.PHONY: install test test-quick test-tf test-jax model-stats bench-metrics bench-data synthetic prepare demo-data \
	reproduce-table1 ablation whole-volume beyond-paper figures export bench-predict bench-cpu bench-train roofline bench-gpu \
	gpu-wheels clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,ray,$(TF_EXTRA)]"
	rm -f $(VENV)/.installed-*
	touch $@

# The whole suite on TensorFlow, then the backend-agnostic model/loss/layer
# tests again on JAX (what .ci/run calls).
test: test-tf test-jax

# The edit-test loop: no test that starts a process or trains beyond a few steps
# (the `slow` marker); a quick test that starts a process fails (tests/conftest.py).
test-quick: install
	BOUNDARY_AWARE_QUICK_TESTS=1 KERAS_BACKEND=tensorflow $(PY) -m pytest -q -n $(TEST_WORKERS) \
		--dist loadfile -m "not slow" $(PYTEST_ARGS)

test-tf: install
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-jax: install
	KERAS_BACKEND=jax $(PY) -m pytest -q -n $(TEST_WORKERS) -m backend $(PYTEST_ARGS)

model-stats: install
	$(PY) -m boundary_aware.model_stats

bench-metrics: install
	$(PY) -m experiments.benchmarks.metrics_speed

bench-data: install
	$(PY) -m experiments.benchmarks.data_speed

# Synthetic BraTS-like cases (BraTS 2018 layout) and their prepared slices.
SYNTH_DIR ?= data/synthetic_brats
SYNTH_CASES ?= 20
SYNTH_ARGS ?=  # e.g. --overwrite (replaces only our own cases) or --sequences=t1,t1c,t2,flair
PREPARED_DIR ?= data/prepared
BRATS_DIR ?= $(SYNTH_DIR)

synthetic: install
	$(PY) -m data_prep.synthetic --out_dir=$(SYNTH_DIR) --num_cases=$(SYNTH_CASES) --seed=0 $(SYNTH_ARGS)

prepare: install
	$(PY) -m data_prep.prepare_brats --brats_dir=$(BRATS_DIR) --out_dir=$(PREPARED_DIR)

# The demo profile's data in its default place (data/demo_prepared), for training by hand.
demo-data: install
	$(PY) -m experiments.demo_data

# The paper's Table 1. Without BRATS_DIR: synthetic demo data, demo profile.
# make reproduce-table1 [SEEDS=0,1,2,3,4] [BRATS_DIR=...] [SPLIT=split.json] [PROFILE=paper|demo]
#                       [PHANTOM=confirmation|development|plain] [WORKERS=2]
#                       [OUT=...] [OVERRIDES="train.epochs=5 train.batch_size=4"]
#                       [EXECUTOR=local|ray] [RAY_ADDRESS=host:port] [GPUS_PER_RUN=1] [CPUS_PER_RUN=1]
# Every row runs once per seed (default 0,1,2,3,4). Without BRATS_DIR: the confirmation phantom
# (the README's tables); PHANTOM=development is where settings are chosen.
OUT ?= results/table1
PROFILE ?=
SPLIT ?=
OVERRIDES ?=
SEEDS ?=
PHANTOM ?=
# EXECUTOR=ray runs every (row, seed) as a Ray task: a local cluster, or RAY_ADDRESS=host:port.
EXECUTOR ?= local
# EXECUTOR=local: runs at a time (default: 2 on a machine with 2+ cores and no NVIDIA GPU, else 1)
WORKERS ?=
RAY_ADDRESS ?=
GPUS_PER_RUN ?=
CPUS_PER_RUN ?=
TABLE_ARGS = --out=$(OUT) $(if $(BRATS_DIR_SET),--brats_dir=$(BRATS_DIR_SET)) \
	$(if $(SEEDS),--seeds=$(SEEDS)) --executor=$(EXECUTOR) \
	$(if $(RAY_ADDRESS),--ray_address=$(RAY_ADDRESS)) \
	$(if $(GPUS_PER_RUN),--gpus_per_run=$(GPUS_PER_RUN)) \
	$(if $(CPUS_PER_RUN),--cpus_per_run=$(CPUS_PER_RUN)) \
	$(if $(SPLIT),--split_file=$(SPLIT)) $(if $(PROFILE),--profile=$(PROFILE)) \
	$(if $(PHANTOM),--phantom=$(PHANTOM)) $(if $(WORKERS),--workers=$(WORKERS)) \
	$(foreach o,$(OVERRIDES),--override=$(o))
BRATS_DIR_SET = $(if $(filter command line environment,$(origin BRATS_DIR)),$(BRATS_DIR))

reproduce-table1: install
	$(PY) -m experiments.reproduce_table1 $(TABLE_ARGS)

ablation: install
	$(PY) -m experiments.ablation $(subst --out=$(OUT),--out=$(OUT_ABLATION),$(TABLE_ARGS))

OUT_ABLATION ?= results/ablation

# Whole volumes (beyond the paper): head mask, test-time flips, 3D clean-up chosen on
# validation, seed ensembles and tumor-free training slices, over seeds. Takes Table 1's
# flags; with the same OUT it reuses Table 1's Ours runs.
whole-volume: install
	$(PY) -m experiments.whole_volume $(TABLE_ARGS)

# Beyond the paper: four sequences in, WT/TC/ET out, BraTS's scores per region, against the
# paper's T1c/TC setting, Ours and U-Net over seeds. Takes Table 1's flags; its own OUT.
OUT_BEYOND ?= results/beyond_paper
beyond-paper: install
	$(PY) -m experiments.beyond_paper $(subst --out=$(OUT),--out=$(OUT_BEYOND),$(TABLE_ARGS))

figures: install
	$(PY) -m experiments.figures --table_dir=$(OUT) --out=$(OUT)/figures

# SavedModel export of a run: make export WORKDIR=results/table1/runs/ours_seed0 EXPORT_DIR=exports/ours
WORKDIR ?= $(OUT)/runs/ours_seed0
EXPORT_DIR ?= exports/ours

export: install
	$(PY) -m boundary_aware.export --workdir=$(WORKDIR) --out=$(EXPORT_DIR)

# Seconds per 240 x 240 x 155 volume for Ours at paper widths under TensorFlow, JAX, ONNX
# Runtime and OpenVINO, and their masks against TensorFlow's (installs the bench extra):
# make bench-predict [PREDICT_ARGS="--runtimes=tensorflow,openvino,openvino-bf16 --tta=none,lr+ap"]
# (each model with and without predict's CPU path: python -m experiments.benchmarks.predict_speed)
PREDICT_ARGS ?=
bench-predict: install
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m experiments.benchmarks.predict_runtimes $(PREDICT_ARGS)

# Our U-Net against PyTorch's on this CPU: training images/s and one volume's seconds
# (installs the peer extra, PyTorch): make bench-cpu [CPU_ARGS="--sizes=240,64 --steps=3"]
CPU_ARGS ?=
bench-cpu: install
	$(PY) -m pip install --quiet -e ".[peer]"
	$(PY) -m experiments.benchmarks.cpu_peer $(CPU_ARGS)

# Training throughput, the trimmed grid (--full: every combination);
# on a CPU: make bench-train BENCH_ARGS="--profile=demo --precisions=float32 --jit=on"
BENCH_ARGS ?=
bench-train: install
	$(PY) -m experiments.benchmarks.train_speed $(BENCH_ARGS)

# FLOPs and bytes per train step from XLA's cost analysis, and the H100 roofline they predict.
ROOFLINE_ARGS ?= --parts
roofline: install
	KERAS_BACKEND=jax $(PY) -m experiments.benchmarks.roofline $(ROOFLINE_ARGS)

# The GPU run in one command (JAX; no install step: the GPU machine has no network).
# There: make bench-gpu, with .whl/ from `make gpu-wheels` carried along.
bench-gpu:
	sh experiments/benchmarks/bench_gpu.sh $(BENCH_ARGS)

# Wheels for the GPU machine's Python 3.12 (Keras and what it lacks there), and the reference.
GPU_WHEELS = keras==3.15.1 namex==0.1.0 optree==0.20.0 nibabel==5.4.2 ml-collections==1.1.0
gpu-wheels: install
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	cp ../shared/bench/anchor_unet.py .whl/

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
