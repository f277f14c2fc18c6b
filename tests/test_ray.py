"""The Ray executor: same numbers as the local one, joining a running cluster, a lost worker
retried and resumed, a failing run reported while the others finish. Every Ray process a test
starts is stopped by it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.executors import Job, local_sweep, ray_sweep
from experiments.steps import run_dir
from tests.conftest import ROOT, tiny_prepared

pytestmark = pytest.mark.slow  # every test here starts processes

pytest.importorskip("ray")
# `make test` runs each test file in one xdist worker (--dist loadfile), so these run in
# turn: `ray stop` below would stop a neighbour's cluster

OVERRIDES = ("model.kwargs.base_filters=4", "data.image_size=32", "train.batch_size=4",
             "train.epochs=4", "eval.batch_size=8", "train.jit_compile=off")
SWEEP = [("unet", 0), ("unet", 1), ("vnet", 1)]  # the references the tests below compare with
ON_RAY = [("unet", 0), ("vnet", 1)]  # two runs at once on the local cluster


def jobs(out, prepared, runs=SWEEP):
    return [Job(v, s, "demo", str(prepared), str(run_dir(out, v, s)), OVERRIDES) for v, s in runs]


def metrics(results):
    return {name: json.loads(Path(path).read_text()) for name, path in results.items()}


def raylets():
    """PIDs of Ray's per-node daemons on this machine."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"raylet" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The tiny sweep on the local executor: the reference numbers."""
    root = tmp_path_factory.mktemp("ray_sweep")
    prepared = tiny_prepared(root)
    results, failures = local_sweep(jobs(root / "local", prepared))
    assert not failures
    return root, prepared, results


@pytest.fixture
def no_ray_left():
    before = set(raylets())
    yield
    deadline = time.time() + 30
    while set(raylets()) - before and time.time() < deadline:
        time.sleep(0.5)
    assert not set(raylets()) - before, "a Ray process outlived its test"


def test_a_local_ray_cluster_gives_the_local_executors_numbers_and_names_a_failure(
        local, no_ray_left):
    """Two runs at once on a local cluster compute the local executor's numbers; a third that
    fails by itself is reported by name with its log, and the others finish."""
    root, prepared, expected = local
    bad = Job("vnet", 0, "demo", "/no/such/prepared", str(run_dir(root / "ray", "vnet", 0)),
              OVERRIDES)
    results, failures = ray_sweep(jobs(root / "ray", prepared, ON_RAY) + [bad], root / "ray",
                                  cpus_per_run=1, progress=False)
    assert metrics(results) == {name: metrics(expected)[name] for name in results}
    assert sorted(results) == ["unet_seed0", "vnet_seed1"]
    for name in results:
        log = (root / "ray" / "runs" / name / "run.log").read_text()
        assert f"{name}: attempt on" in log and "epoch 4:" in log
    assert list(failures) == ["vnet_seed0"]
    assert "training failed (exit status 1)" in failures["vnet_seed0"]
    assert str(Path(bad.workdir) / "run.log") in failures["vnet_seed0"]
    assert "error: /no/such/prepared/manifest.json" in (Path(bad.workdir) / "run.log").read_text()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_joining_a_running_cluster(local, no_ray_left, tmp_path):
    root, prepared, expected = local
    port = _free_port()
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"], check=True,
                   capture_output=True, env=env, timeout=120)
    try:
        one = [("vnet", 1)]
        results, failures = ray_sweep(jobs(tmp_path, prepared, one), tmp_path,
                                      address=f"127.0.0.1:{port}", progress=False)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
    assert not failures
    assert metrics(results) == {"vnet_seed1": metrics(expected)["vnet_seed1"]}


def _training_child(workdir):
    """PID of the training process of a run (a child of its Ray worker)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"boundary_aware.train" in cmdline and f"--workdir={workdir}".encode() in cmdline:
                return int(proc.name)
    return None


def test_a_lost_worker_is_retried_and_the_run_resumes_exactly(local, no_ray_left, tmp_path):
    """SIGKILL the worker of a run mid-training: Ray retries the task, and the run resumes
    after its last completed epoch with the final weights of an uninterrupted run."""
    root, prepared, expected = local
    job = jobs(tmp_path, prepared, [("unet", 1)])[0]
    driver = subprocess.Popen(
        [sys.executable, "-c",
         "import json, sys; from experiments.executors import Job, ray_sweep\n"
         f"job = Job(*{list(job.__dict__.values())!r})\n"
         f"print(json.dumps(ray_sweep([job], {str(tmp_path)!r}, progress=False)), flush=True)\n"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        state = Path(job.workdir) / "state.json"
        deadline = time.time() + 240
        child = None
        while time.time() < deadline:  # wait for the first completed epoch, then freeze there
            child = child or _training_child(job.workdir)
            if child and state.exists() and json.loads(state.read_text())["epoch"] >= 1:
                os.kill(child, signal.SIGSTOP)
                break
            time.sleep(0.005)
        else:
            pytest.fail("training never completed an epoch")
        epoch = json.loads(state.read_text())["epoch"]
        assert 1 <= epoch < 4, "the run finished before it could be interrupted"
        worker = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(worker, signal.SIGKILL)  # its training child dies with it
        out, _ = driver.communicate(timeout=300)
    finally:
        driver.kill()
        driver.wait()
    results, failures = json.loads(out.strip().splitlines()[-1])
    assert not failures
    log = (Path(job.workdir) / "run.log").read_text()
    assert log.count("attempt on") == 2 and f"resuming after epoch {epoch}" in log
    import keras

    import boundary_aware.layers  # noqa: F401
    a = keras.saving.load_model(Path(job.workdir) / "final.keras", compile=False).get_weights()
    b = keras.saving.load_model(root / "local" / "runs" / "unet_seed1" / "final.keras",
                                compile=False).get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert metrics(results) == {"unet_seed1": metrics(expected)["unet_seed1"]}


def test_an_incomplete_sweep_writes_what_finished_and_fails(local, tmp_path, monkeypatch):
    """The experiment names the failed runs in the table and exits non-zero."""
    import experiments.runner as runner
    from experiments.steps import RunError
    root, prepared, expected = local
    done = {"unet": {0: Path(expected["unet_seed0"])}}
    monkeypatch.setattr(runner, "prepare_data", lambda *a, **k: prepared)
    monkeypatch.setattr(runner, "run_sweep", lambda *a, **k: (done, {"unet_seed1": "it broke"}))
    with pytest.raises(RunError, match="1 of 2 runs failed \\(unet_seed1\\)"):
        runner.seeded_experiment(tmp_path, "t", "T", ["unet"], [0, 1], executor="ray")
    table = json.loads((tmp_path / "t.json").read_text())
    assert any("INCOMPLETE" in n and "unet_seed1" in n for n in table["notes"])
    assert [r["seeds"] for r in table["rows"]] == [[0]]


def test_two_local_runs_at_a_time_give_the_same_numbers_and_name_a_failure(local, tmp_path):
    """Two runs at once (the default on a 2-core machine) compute what one at a time
    computes; a failing run is reported by name with its log, and no new run starts."""
    root, prepared, expected = local
    one = [Job("unet", 0, "demo", str(prepared), str(run_dir(tmp_path / "one", "unet", 0)),
               OVERRIDES)]
    results, failures = local_sweep(one, workers=1)
    assert not failures
    assert metrics(results)["unet_seed0"]["per_slice"] == \
        metrics(expected)["unet_seed0"]["per_slice"]
    bad = Job("vnet", 0, "demo", "/no/such/prepared", str(run_dir(tmp_path, "vnet", 0)), OVERRIDES)
    results, failures = local_sweep([bad] + jobs(tmp_path / "two", prepared, [("unet", 1)]),
                                    workers=2)
    assert list(failures) == ["vnet_seed0"] and "run.log" in failures["vnet_seed0"]
    if results:  # started beside the failing run, before it failed: it finished
        assert metrics(results)["unet_seed1"]["per_slice"] == \
            metrics(expected)["unet_seed1"]["per_slice"]
