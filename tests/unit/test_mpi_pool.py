"""The MPI workers of mpi4py learners (job/mpi_pool.py), for real under mpiexec: results come
back to the right futures, failures and unpicklable results reach the point that caused them,
every worker evaluates, queued points are cancelled, and a job that ends without a pool (its
learner had already reached its goal) still ends its worker ranks instead of hanging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")

DRIVER = textwrap.dedent(
    """
    import json, os, sys, threading, time
    from concurrent.futures import wait
    from mpi4py import MPI
    from adaptive_snakemake.job.mpi_pool import DEPTH, MPIWorkerPool

    import tasks

    pool = MPIWorkerPool(MPI.COMM_WORLD)
    report = {"workers": pool.workers}
    squares = [pool.submit(tasks.square, x) for x in range(200)]
    report["squares"] = [f.result(timeout=60) for f in squares]
    failed = pool.submit(tasks.fails, 3)
    report["error"] = repr(failed.exception(timeout=60))
    unpicklable = pool.submit(tasks.returns_lock, 0)
    report["unpicklable"] = type(unpicklable.exception(timeout=60)).__name__
    ranks = [pool.submit(tasks.rank_after, 0.02) for _ in range(8)]
    report["ranks"] = sorted({f.result(timeout=60) for f in ranks})
    # More queued than the workers hold: the rest is cancelled by shutdown.
    slow = [pool.submit(tasks.rank_after, 0.3) for _ in range(pool.workers * DEPTH + 6)]
    time.sleep(0.1)
    pool.shutdown(wait=True, cancel_futures=True)
    report["cancelled"] = sum(f.cancelled() for f in slow)
    report["finished"] = sum(f.done() and not f.cancelled() for f in slow)
    print("REPORT " + json.dumps(report), flush=True)
    """
)

TASKS = textwrap.dedent(
    """
    import threading, time
    from mpi4py import MPI


    def square(x):
        return x * x


    def fails(x):
        raise ValueError(f"point {x} failed")


    def returns_lock(x):
        return threading.Lock()


    def rank_after(seconds):
        time.sleep(seconds)
        return MPI.COMM_WORLD.Get_rank()
    """
)


def _run(tmp_path, module: str, ranks: int = 3) -> subprocess.CompletedProcess:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "driver.py").write_text(DRIVER)
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "adaptive_snakemake.job.mpi_pool"]
    return subprocess.run(
        [*command, "-m", module],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_points_come_back_to_their_futures_from_every_worker(tmp_path):
    done = _run(tmp_path, "driver")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.split("REPORT ", 1)[1])
    assert report["workers"] == 2
    assert report["squares"] == [x * x for x in range(200)]
    assert report["error"] == "ValueError('point 3 failed')"
    assert report["unpicklable"] == "RuntimeError"
    assert report["ranks"] == [1, 2]  # both worker ranks evaluated points
    # The workers held DEPTH each and finished them; the others never started.
    assert report["finished"] == 2 * 2
    assert report["cancelled"] == 6


def test_a_job_that_ends_without_a_pool_ends_its_workers(tmp_path):
    (tmp_path / "nothing.py").write_text("print('nothing to compute')\n")
    done = _run(tmp_path, "nothing")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("nothing to compute") == 1  # only rank 0 ran it


def test_the_job_exit_code_is_the_launchers(tmp_path):
    (tmp_path / "exits.py").write_text("import sys\nsys.exit('stopped: see the log')\n")
    done = _run(tmp_path, "exits")
    assert done.returncode == 1
    assert "stopped: see the log" in done.stderr
