"""In-job efficiency of the ipyparallel, dask-mpi and dask executors, side by side with a
bare adaptive Runner on the same executor.

For each executor: a Learner1D on a 10 ms function with 2 workers, run to N points
  - ours: the real learner job (`python -m adaptive_snakemake.job`, under mpiexec for
    dask-mpi; ipyparallel's engines under mpiexec); its time is the result's `elapsed`
    (the run loop and final save, cluster start-up excluded: it is started before the
    attempt's clock);
  - bare: adaptive.Runner(learner, executor=<the same kind of cluster>), timed
    around the runner only (cluster start-up excluded as well).
Efficiency = N x 10 ms / (2 workers x time); the ideal is 1.0. The ratio ours / bare is
what the loop costs or saves against adaptive's own Runner.

    PYTHONPATH=src .venv/bin/python benchmarks/executor_efficiency.py [--points 400]

Run it on an idle machine; it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COST = 0.01
WORKERS = 2
TIMEOUT_S = 300  # per measurement; a hang is reported, not waited out
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def _function():
    import functools

    from examples.functions import peak

    return functools.partial(peak, cost=COST)


# -- bare adaptive Runner (run in a subprocess per executor) --------------------------------------


def _bare_runner(executor, points: int) -> float:
    """adaptive's (asyncio) Runner, as its documentation runs it on these executors.
    Not BlockingRunner: with ipyparallel 9 it hung for good in 2 of 3 tries here (its
    concurrent.futures.wait has no timeout and misses a finished AsyncResult)."""
    import asyncio

    import adaptive

    learner = adaptive.Learner1D(_function(), bounds=(-1, 1))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    started = time.monotonic()
    runner = adaptive.Runner(learner, executor=executor, npoints_goal=points, ioloop=loop)
    loop.run_until_complete(runner.task)
    seconds = time.monotonic() - started
    runner.task.result()  # raises what the runner raised
    return seconds


def bare(kind: str, points: int, scheduler_file: str | None) -> None:
    if kind == "ipyparallel":
        import ipyparallel as ipp
        from traitlets.config import Config

        config = Config()  # engines under mpiexec, as ours
        config.MPIEngineSetLauncher.mpi_cmd = [MPIEXEC]
        with (
            tempfile.TemporaryDirectory() as profile,
            ipp.Cluster(
                n=WORKERS,
                log_level=40,
                profile_dir=profile,
                engine_launcher_class="mpi",
                config=config,
            ) as client,
        ):
            client.wait_for_engines(WORKERS)
            seconds = _bare_runner(client, points)
    elif kind == "dask":
        from distributed import Client

        with Client(scheduler_file=scheduler_file) as client:
            seconds = _bare_runner(client, points)
    else:  # dask-mpi, under mpiexec -n WORKERS + 2
        import dask_mpi
        from distributed import Client

        if not dask_mpi.initialize(nthreads=1, memory_limit=0, dashboard=False, exit=False):
            return
        client = Client()
        client.wait_for_workers(WORKERS)
        seconds = _bare_runner(client, points)
        client.close()
        dask_mpi.send_close_signal()
    print(json.dumps({"seconds": seconds}))


# -- ours: the real learner job -------------------------------------------------------------------


def _workdir(kind: str, points: int, scheduler_file: str | None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"efficiency-{kind}-"))
    (workdir / "examples").symlink_to(REPO / "examples")
    tasks = {"ipyparallel": WORKERS + 1, "dask-mpi": WORKERS + 2, "dask": 1}[kind]
    extra = f"    scheduler_file: {scheduler_file}\n" if kind == "dask" else ""
    (workdir / "learners.yaml").write_text(
        textwrap.dedent(
            f"""
            sweeps:
              s:
                function: examples.functions:peak
                learner: Learner1D
                learner_kwargs: {{bounds: [-1, 1]}}
                fixed: {{cost: {COST}}}
                executor: {kind}
                tasks: {tasks}
                goal: {{npoints: {points}}}
                save_interval: 300
                log_interval: 300
            """
        )
        + extra
    )
    return workdir


def ours(kind: str, points: int, scheduler_file: str | None) -> float:
    from adaptive_snakemake.specs.parse import load_specs

    workdir = _workdir(kind, points, scheduler_file)
    (spec,) = load_specs(workdir / "learners.yaml")
    launcher = [MPIEXEC, "-n", str(WORKERS + 2)] if kind == "dask-mpi" else []
    command = [*launcher, sys.executable, "-m", "adaptive_snakemake.job", "--spec", str(spec)]
    for option, path in (
        ("--checkpoint", "state/s.pickle"),
        ("--learner-pickle", "results/s/learner.pickle"),
        ("--result", "results/s/result.json"),
    ):
        command += [option, path]
    # ipyparallel: the engines start under mpiexec, as the workflow runs them locally.
    env = {
        **os.environ,
        "ADAPTIVE_SNAKEMAKE_MONITOR": "off",
        "ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER": MPIEXEC,
    }
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads((workdir / "results" / "s" / "result.json").read_text())["elapsed"]


def _bare_in_subprocess(kind: str, points: int, scheduler_file: str | None) -> float:
    launcher = [MPIEXEC, "-n", str(WORKERS + 2)] if kind == "dask-mpi" else []
    command = [*launcher, sys.executable, __file__, "--bare", kind, "--points", str(points)]
    if scheduler_file:
        command += ["--scheduler-file", scheduler_file]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ["PYTHONPATH"]])}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(lines[-1])["seconds"]


def _dask_cluster(directory: Path) -> tuple[subprocess.Popen, str]:
    """A dask cluster of WORKERS single-threaded workers, as a user would run it."""
    scheduler_file = directory / "scheduler.json"
    script = textwrap.dedent(
        f"""
        import sys
        from distributed import Client, LocalCluster
        if __name__ == "__main__":
            cluster = LocalCluster(n_workers={WORKERS}, threads_per_worker=1, memory_limit=0,
                                   dashboard_address=None)
            Client(cluster).write_scheduler_file({str(scheduler_file)!r})
            sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ["PYTHONPATH"]])}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE)
    while not scheduler_file.exists():
        time.sleep(0.2)
    return process, str(scheduler_file)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler-file", help=argparse.SUPPRESS)
    parser.add_argument("--executors", default="ipyparallel,dask-mpi,dask")
    args = parser.parse_args()
    if args.bare:
        bare(args.bare, args.points, args.scheduler_file)
        return
    print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} CPUs)")
    print(f"{args.points} points x {COST * 1000:.0f} ms, {WORKERS} workers")
    header = ("ours s", "bare s", "ours eff", "bare eff", "ratio")
    print(f"{'executor':12} " + " ".join(f"{h:>8}" for h in header))
    ideal = args.points * COST / WORKERS
    cluster = None
    with tempfile.TemporaryDirectory() as directory:
        try:
            for kind in args.executors.split(","):
                scheduler_file = None
                if kind == "dask":
                    cluster, scheduler_file = _dask_cluster(Path(directory))
                mine = ours(kind, args.points, scheduler_file)
                theirs = _bare_in_subprocess(kind, args.points, scheduler_file)
                print(
                    f"{kind:12} {mine:8.2f} {theirs:8.2f} {ideal / mine:8.2f} "
                    f"{ideal / theirs:8.2f} {theirs / mine:8.2f}",
                    flush=True,
                )
        finally:
            if cluster is not None:
                cluster.stdin.close()
                cluster.wait(timeout=30)
    print(f"load average after: {os.getloadavg()}")
    print("ratio = bare time / our time (above 1: our loop is faster); eff: ideal = 1.0")


if __name__ == "__main__":
    main()
