"""Where the runs of a sweep execute: here (one or a few at a time), or as Ray tasks.

Both executors run each (variant, seed) through `steps.run_variant`: the
training and evaluation commands in child processes, writing the same run
directory under OUT. `ray_sweep` makes each run one Ray task on a local
cluster or an existing one (`address`):

* OUT must be a path every node sees (a shared file system); it is checked on
  every node before any run starts.
* A task whose worker dies (a lost node, an out-of-memory kill) is retried
  (`max_retries`); its training child dies with it, and the retry resumes
  from the run's last completed epoch with the uninterrupted learning-rate
  schedule, so a lost node costs at most one epoch of that run.
* A run that fails by itself (bad config, NaN loss) is not retried: it is
  reported by name with its log file, and the other runs finish.
* One progress bar for the sweep; each run's messages go to RUN/run.log.

Reference: Ray Core (tasks, `max_retries`, `ray.wait`); docs/design.md,
"Beyond one machine".
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from boundary_aware.run_directory import RunDirectory
from experiments.steps import RunError, run_variant, say

# Ray's own processes kept small on a laptop: no dashboard, a small object store
# (the tasks exchange only file paths).
OBJECT_STORE_BYTES = 100 * 2**20
MAX_RETRIES = 3
# The driver's values of these reach every run unchanged (Ray sets OMP_NUM_THREADS
# to a task's CPU count otherwise, which changes oneDNN's threading and its sums).
PASSED_ENV = ("KERAS_BACKEND", "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL")


@dataclass(frozen=True)
class Job:
    """One run of a sweep."""
    variant: str
    seed: int
    profile: str
    prepared: str
    workdir: str
    overrides: tuple = ()

    @property
    def name(self) -> str:
        return Path(self.workdir).name


def run_job(job: Job, log=None) -> str:
    return str(run_variant(job.variant, job.profile, job.prepared, job.workdir, job.overrides,
                           seed=job.seed, log=log))


def local_workers() -> int:
    """Runs at a time on this machine by default: 2 where there are 2 or more CPU cores and
    no NVIDIA GPU (two small CPU runs at once finish about 1.5 times sooner than one after
    the other, docs/cluster.md), else 1 (each run would take the whole GPU's memory)."""
    if shutil.which("nvidia-smi"):
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def local_sweep(jobs, workers: int | None = None) -> tuple[dict, dict]:
    """The runs in this process's children, `workers` at a time (default `local_workers`).

    One at a time, a run's messages go to the console and the first failure stops the
    sweep (RunError). Several at a time, each run's messages go to RUN/run.log, the
    console says when each starts and ends, a failure starts no further run, and the
    runs already going finish: ({run: metrics.json}, {run: why it failed}).
    """
    workers = local_workers() if workers is None else max(1, int(workers))
    jobs = list(jobs)
    if workers == 1 or len(jobs) < 2:
        return {job.name: run_job(job) for job in jobs}, {}
    results, failures, failed = {}, {}, threading.Event()

    def one(job):
        if failed.is_set():
            return
        run = RunDirectory(job.workdir)
        log = run.log_path
        log.parent.mkdir(parents=True, exist_ok=True)
        kept = run.is_complete() and not run.needs_evaluation()
        if not kept:
            say(f"{job.name}: started (messages in {log})")
        try:
            results[job.name] = run_job(job, log)
            say(f"{job.name}: {'complete, kept' if kept else 'done'}")
        except RunError as err:
            failed.set()
            failures[job.name] = f"{err} (log: {log})"

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, jobs))
    return results, failures


def _ray_task(job: Job, env: dict) -> str:
    """The body of a run's Ray task (in a worker process, possibly on another node)."""
    for key in PASSED_ENV:
        if env.get(key) is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = env[key]
    log = RunDirectory(job.workdir).log_path
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as stream:
        stream.write(f"[boundary-aware] {job.name}: attempt on {socket.gethostname()}, worker PID "
                     f"{os.getpid()}, GPUs {os.environ.get('CUDA_VISIBLE_DEVICES', 'none')}\n")
    return run_job(job, log)


def _visible(path: str, token: str) -> tuple[str, bool]:
    try:
        return socket.gethostname(), Path(path).read_text() == token
    except OSError:
        return socket.gethostname(), False


def check_shared_path(ray, out) -> None:
    """RunError unless every alive node of the cluster sees OUT (a file written here)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    token = uuid.uuid4().hex
    Path(out).mkdir(parents=True, exist_ok=True)
    probe = Path(out) / f".ray-visibility-{token}"
    probe.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        check = ray.remote(num_cpus=0)(_visible)
        answers = ray.get([check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(str(probe.resolve()), token) for n in nodes])
    finally:
        probe.unlink(missing_ok=True)
    blind = [host for host, seen in answers if not seen]
    if blind:
        raise RunError(f"{Path(out).resolve()}: not visible from Ray node(s) {', '.join(blind)}; "
                       f"OUT must be a path every node sees (a shared file system)")


def default_gpus_per_run(ray) -> float:
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def ray_sweep(jobs, out, address: str | None = None, gpus_per_run: float | None = None,
              cpus_per_run: float = 1, max_retries: int = MAX_RETRIES,
              progress: bool = True) -> tuple[dict, dict]:
    """Every job as one Ray task (module docstring); ({run: metrics.json}, {run: why})."""
    try:
        import ray
    except ImportError:
        raise RunError("--executor=ray needs Ray: pip install -e '.[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        else:
            ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                     log_to_driver=False, logging_level="WARNING")
    try:
        check_shared_path(ray, out)
        gpus = default_gpus_per_run(ray) if gpus_per_run is None else float(gpus_per_run)
        task = ray.remote(max_calls=1)(_ray_task).options(  # a fresh worker process per run
            num_cpus=cpus_per_run, num_gpus=gpus, max_retries=max_retries,
            retry_exceptions=False)
        env = {key: os.environ.get(key) for key in PASSED_ENV}
        pending = {task.remote(job, env): job for job in jobs}
        return _collect(ray, pending, len(jobs), progress)
    finally:
        if started_here:
            ray.shutdown()


def _collect(ray, pending: dict, total: int, progress: bool) -> tuple[dict, dict]:
    """Wait for every task, with one progress bar naming the runs in progress."""
    from tqdm import tqdm
    results, failures = {}, {}
    start = time.time()
    bar = tqdm(total=total, desc="runs", unit="run", file=sys.stderr, disable=not progress,
               mininterval=0.5 if sys.stderr.isatty() else 60)  # a log file: one line a minute
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    results[job.name] = ray.get(ref)
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if isinstance(err.cause, Exception) else err
                    failures[job.name] = f"{cause} (log: {RunDirectory(job.workdir).log_path})"
                except ray.exceptions.RayError as err:  # its worker died more often than retried
                    failures[job.name] = (f"{type(err).__name__}: {str(err).splitlines()[0]} "
                                          f"(log: {RunDirectory(job.workdir).log_path})")
                bar.update(1)
            running = [job.name for job in pending.values()
                       if RunDirectory(job.workdir).log_path.exists()
                       and RunDirectory(job.workdir).log_path.stat().st_mtime >= start]
            bar.set_postfix_str("running: " + ", ".join(running) if running else "")
    finally:
        bar.close()
    return results, failures
