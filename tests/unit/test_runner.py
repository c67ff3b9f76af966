"""The in-job runner, run for real in subprocesses: signals, failed saves, restarts."""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.specs.parse import load_specs
from tests.workflow_helpers import environment, wait_for

REPO_EXAMPLES = "examples.functions"


def _workflow(tmp_path, goal="{npoints: 100000}", executor="sequential", tasks=1, function="peak"):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "learners.yaml").write_text(
        textwrap.dedent(
            f"""
            sweeps:
              s:
                function: {REPO_EXAMPLES}:{function}
                learner: Learner1D
                learner_kwargs: {{bounds: [-1, 1]}}
                executor: {executor}
                tasks: {tasks}
                goal: {goal}
                save_interval: 0.5
                log_interval: 0.5
                fixed: {{cost: 0.002}}
            """
        )
    )
    (tmp_path / "examples").symlink_to(
        os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    )
    return tmp_path


def _job_arguments(workdir):
    """What the learner rule passes: the spec as JSON and every path."""
    (spec,) = load_specs(workdir / "config" / "learners.yaml")
    files = LearnerFiles.of("s")
    return [
        "-m",
        "adaptive_snakemake.job",
        "--spec",
        str(spec),
        "--checkpoint",
        str(files.checkpoint),
        "--learner-pickle",
        str(files.learner_pickle),
        "--result",
        str(files.result),
    ]


# How the workflow starts an mpi4py learner job under its MPI launcher.
MPI_POOL = (sys.executable, "-m", "adaptive_snakemake.job.mpi_pool")


def _start_job(workdir, *args, preexec_fn=None, at_end=False):
    """The job (under `args` as its launcher; with at_end, `args` are extra job options)."""
    env = environment()
    env["ADAPTIVE_SNAKEMAKE_MONITOR"] = "off"
    launcher, extra = ((), list(args)) if at_end else (args, [])
    command = (
        [*launcher, sys.executable, *_job_arguments(workdir)]
        if not launcher or "mpi_pool" not in launcher[-1]
        else [*launcher, *_job_arguments(workdir)]
    )
    job = subprocess.Popen(
        command + extra,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )
    job.started = time.monotonic()
    return job


def _meta(workdir):
    path = workdir / "state" / "s.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_signal_saves_at_once_and_exits_non_zero(tmp_path, signum):
    workdir = _workflow(tmp_path)
    job = _start_job(workdir)
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 60, "a first checkpoint")
    time.sleep(0.3)
    job.send_signal(signum)
    sent = time.monotonic()
    output, _ = job.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert job.returncode == 128 + signum, output
    assert f"received {signal.Signals(signum).name}" in output
    # the save on the signal holds every point told so far (more than the last periodic one)
    import adaptive

    from adaptive_snakemake.job.checkpoint import restore_learner
    from examples.functions import peak

    learner = adaptive.Learner1D(peak, bounds=(-1, 1))
    assert restore_learner(learner, workdir / "state" / "s.pickle") == _meta(workdir)["npoints"]
    assert not (workdir / "results" / "s" / "result.json").exists()


def _small_files_only():
    # Files may not grow past 3 kB: a checkpoint of a few hundred points no longer fits,
    # as when a disk fills up (Python ignores SIGXFSZ, so the write fails with EFBIG).
    resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))


def test_failed_save_fails_the_job_and_keeps_the_last_checkpoint(tmp_path):
    workdir = _workflow(tmp_path)
    job = _start_job(workdir, preexec_fn=_small_files_only)
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "File too large" in output
    assert not (workdir / "results").exists()
    # the checkpoint before the failed save is intact and readable
    import adaptive

    from adaptive_snakemake.job.checkpoint import restore_learner
    from examples.functions import peak

    learner = adaptive.Learner1D(peak, bounds=(-1, 1))
    on_disk = restore_learner(learner, workdir / "state" / "s.pickle")
    assert on_disk > 0
    assert not [p for p in os.listdir(workdir / "state") if p.endswith(".tmp")]
    # the log says what is on disk, not the points in memory that could not be saved
    assert f"still holds {on_disk} points" in output, output[-2000:]
    assert f"the checkpoint holds {on_disk} points" in output, output[-2000:]


def test_function_that_raises_fails_with_traceback_after_saving(tmp_path):
    workdir = _workflow(tmp_path, function="always_fails")
    text = (workdir / "config" / "learners.yaml").read_text().replace("fixed: {cost: 0.002}", "")
    (workdir / "config" / "learners.yaml").write_text(text)
    job = _start_job(workdir)
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 1
    assert "Traceback" in output and "ValueError: always_fails was called" in output


def test_mpi_world_size_mismatch_is_a_clear_failure(tmp_path):
    """tasks: 2 is 2 workers + the manager: 3 ranks asked for, 2 given (as when the launcher
    got the old layout, `-n tasks`)."""
    workdir = _workflow(tmp_path, executor="mpi4py", tasks=2)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    job = _start_job(
        workdir, mpiexec, "-n", "2", sys.executable, "-m", "adaptive_snakemake.job.mpi_pool"
    )
    output, _ = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "MPI world size is 2 but this learner asked for 3 ranks" in output
    assert not (workdir / "state" / "s.pickle").exists()


def test_mpi_learner_runs_with_the_ranks_it_asked_for(tmp_path):
    """tasks: 2 workers, plus the manager: 3 ranks."""
    workdir = _workflow(tmp_path, executor="mpi4py", tasks=2, goal="{npoints: 50}")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    job = _start_job(
        workdir, mpiexec, "-n", "3", sys.executable, "-m", "adaptive_snakemake.job.mpi_pool"
    )
    output, _ = job.communicate(timeout=120)
    assert job.returncode == 0, output
    result = json.loads((workdir / "results" / "s" / "result.json").read_text())
    assert result["npoints"] == 50


def test_second_job_for_the_same_learner_waits_then_finishes_without_recomputing(tmp_path):
    """As after a restart that resubmits a learner whose first job still runs."""
    workdir = _workflow(tmp_path, goal="{npoints: 2000}")
    first = _start_job(workdir)
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 0, 60, "the first job to save")
    second = _start_job(workdir)
    out_first, _ = first.communicate(timeout=120)
    out_second, _ = second.communicate(timeout=120)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, out_second
    assert "waiting" in out_second

    events = [json.loads(line) for line in open(workdir / "state" / "s.lock.history")]
    holders = [e["pid"] for e in events if e["event"] == "acquired"]
    assert holders == [first.pid, second.pid]
    assert [e["event"] for e in events if e["event"] != "waiting"] == [
        "acquired",
        "released",
        "acquired",
        "released",
    ]
    result = json.loads((workdir / "results" / "s" / "result.json").read_text())
    assert result["npoints"] == 2000
    assert result["restored_npoints"] == 2000  # the second job found the goal already met
    assert result["attempts"] == 2


def test_sigterm_to_every_mpi_rank_still_saves(tmp_path):
    """qdel/scancel/walltime signal all ranks; the workers must not take rank 0 down unsaved."""
    import psutil

    workdir = _workflow(tmp_path, executor="mpi4py", tasks=2)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    job = _start_job(
        workdir, mpiexec, "-n", "3", sys.executable, "-m", "adaptive_snakemake.job.mpi_pool"
    )
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 90, "a first checkpoint")
    time.sleep(0.7)
    ranks = [
        p
        for p in psutil.Process(job.pid).children(recursive=True)
        if "adaptive_snakemake.job" in " ".join(p.cmdline())
    ]
    assert len(ranks) == 3
    for rank in ranks:
        rank.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=60)
    assert job.returncode != 0
    assert "received SIGTERM" in output, output[-3000:]
    meta = _meta(workdir)
    assert meta["npoints"] > 20
    assert not os.path.exists(workdir / "state" / "s.lock")  # released, not left behind


def _interrupted_run(tmp_path):
    """A learner with a checkpoint and its bookkeeping, stopped by SIGTERM."""
    workdir = _workflow(tmp_path)
    job = _start_job(workdir)
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 60, "a first checkpoint")
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=30)
    return workdir


def _set_goal(workdir, goal):
    learners = workdir / "config" / "learners.yaml"
    learners.write_text(learners.read_text().replace("goal: {npoints: 100000}", f"goal: {goal}"))


def _result(workdir):
    return json.loads((workdir / "results" / "s" / "result.json").read_text())


def test_no_checkpoint_no_inherited_time(tmp_path):
    """Moved aside (as our own error message advises): a duration goal must not be
    'reached' with 0 points by inheriting the old attempts' time."""
    workdir = _interrupted_run(tmp_path)
    assert _meta(workdir)["elapsed"] > 0.5
    (workdir / "state" / "s.pickle").rename(workdir / "state" / "s.pickle.broken")
    _set_goal(workdir, "{duration: 0.5}")
    job = _start_job(workdir)
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 0, output
    result = _result(workdir)
    assert result["npoints"] > 0 and result["restored_npoints"] == 0
    assert result["elapsed"] < 5
    assert "is gone (moved aside?)" in output


@pytest.mark.parametrize("damage", ["missing", "truncated", "not an object", "not UTF-8"])
def test_checkpoint_without_bookkeeping_is_continued(tmp_path, damage):
    workdir = _interrupted_run(tmp_path)
    saved = _meta(workdir)["npoints"]
    meta = workdir / "state" / "s.json"
    if damage == "missing":
        meta.unlink()
    elif damage == "truncated":
        meta.write_text(meta.read_text()[:10])
    elif damage == "not an object":
        meta.write_text("[1, 2]")
    else:
        meta.write_bytes(b"\xff\xfe\x00garbage")
    _set_goal(workdir, f"{{npoints: {saved + 30}}}")
    job = _start_job(workdir)
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 0, output
    result = _result(workdir)
    assert result["restored_npoints"] == saved  # the user's data, not started over
    assert result["npoints"] == saved + 30
    assert "state/s.json" in output and "continuing it" in output
    assert not list((workdir / "state").glob("*.superseded-*"))


def _with(workdir, **keys):
    learners = workdir / "config" / "learners.yaml"
    extra = "".join(f"    {key}: {value}\n" for key, value in keys.items())
    learners.write_text(learners.read_text() + extra)


@pytest.mark.parametrize("point_retries", [2, 0])
def test_points_that_fail_now_and_then_are_evaluated_again(tmp_path, point_retries):
    workdir = _workflow(tmp_path, goal="{npoints: 60}", function="flaky")
    marks = tmp_path / "marks"
    marks.mkdir()
    learners = workdir / "config" / "learners.yaml"
    learners.write_text(
        learners.read_text().replace("fixed: {cost: 0.002}", f"fixed: {{marks_dir: '{marks}'}}")
    )
    _with(workdir, point_retries=point_retries)
    job = _start_job(workdir)
    output, _ = job.communicate(timeout=120)
    if point_retries:
        assert job.returncode == 0, output
        assert "evaluating it again (1 of 2 retries)" in output
        assert _result(workdir)["npoints"] == 60
    else:
        assert job.returncode == 1
        assert "RuntimeError: flaky failed once" in output and "code failure 1" in output
    assert len(list(marks.iterdir())) > 0


def test_stop_near_the_walltime_is_recorded_as_a_timeout(tmp_path):
    workdir = _workflow(tmp_path)
    job = _start_job(workdir, "--runtime", "0.1", at_end=True)  # a 6 s walltime
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 0, 60, "a first checkpoint")
    wait_for(lambda: time.monotonic() - job.started > 5.5, 10, "5.5 s")
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=30)
    assert "stopped by the walltime (timeout 1" in output, output[-2000:]
    assert _meta(workdir)["timeouts"] == 1
    # an early stop (scancel, preemption) is not a timeout
    job = _start_job(workdir, "--runtime", "60", at_end=True)
    wait_for(lambda: _meta(workdir).get("attempts") == 2, 60, "the second attempt")
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=30)
    assert _meta(workdir)["timeouts"] == 1


def test_walltime_rule():
    from adaptive_snakemake.job.bookkeeping import is_walltime_stop

    assert is_walltime_stop(3600 - 70, 60)  # SLURM's warning, 60-90 s before the end
    assert not is_walltime_stop(1800, 60)  # scancel or preemption half-way
    assert not is_walltime_stop(3600, None)  # walltime unknown
    assert is_walltime_stop(30, 2)  # a job this short cannot tell: counted as a timeout
    assert not is_walltime_stop(30, 10)


_GIL_HOLDER = '''
import ctypes


def hold(x, seconds=2.0):
    """Compiled code that keeps the GIL (PyDLL does not release it), as Cython often does."""
    ctypes.PyDLL(None).usleep(int(seconds * 1e6))
    return x**2
'''


def _short_lock_timing(monkeypatch, heartbeat=0.2, stale_after=1.0):
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_LOCK_HEARTBEAT", str(heartbeat))
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_LOCK_STALE_AFTER", str(stale_after))
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_LOCK_POLL", "0.05")


def _lock_history(workdir):
    return [json.loads(line) for line in open(workdir / "state" / "s.lock.history")]


def test_function_holding_the_gil_past_stale_after_keeps_its_lock(tmp_path, monkeypatch):
    """Defect 14: each point holds the GIL for 2 s, twice stale_after. A heartbeat thread
    stopped, and the second job took the lock of a live job; both wrote."""
    _short_lock_timing(monkeypatch)
    workdir = _workflow(tmp_path, goal="{npoints: 4}")
    (workdir / "gilhold.py").write_text(_GIL_HOLDER)
    monkeypatch.syspath_prepend(str(workdir))
    learners = workdir / "config" / "learners.yaml"
    learners.write_text(
        learners.read_text()
        .replace(f"{REPO_EXAMPLES}:peak", "gilhold:hold")
        .replace("fixed: {cost: 0.002}", "fixed: {seconds: 2.0}")
    )
    first = _start_job(workdir)
    wait_for(lambda: (workdir / "state" / "s.json").exists(), 60, "the first job to start")
    second = _start_job(workdir)
    out_first, _ = first.communicate(timeout=120)
    out_second, _ = second.communicate(timeout=120)
    assert first.returncode == 0, out_first
    assert second.returncode == 0, out_second
    assert "waiting" in out_second

    events = _lock_history(workdir)
    assert not [e for e in events if e["event"] in ("took_over_stale", "lost")], events
    assert [e["pid"] for e in events if e["event"] == "acquired"] == [first.pid, second.pid]
    result = _result(workdir)
    assert result["npoints"] == 4
    assert result["restored_npoints"] == 4  # the second job found the goal already met


def _stamps(workdir):
    """What the job wrote: checkpoint and bookkeeping (path -> mtime, size)."""
    paths = [workdir / "state" / "s.pickle", workdir / "state" / "s.json"]
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in paths}


def _take_over(lock_path):
    """What a waiter that found our lock stale does: the file is replaced by its own."""
    record = json.loads(lock_path.read_text())
    new = lock_path.with_name("s.lock.new")
    new.write_text(json.dumps({**record, "job_id": "job-B", "pid": 1, "token": "not-ours"}))
    os.replace(new, lock_path)


def test_job_whose_lock_was_taken_over_stops_without_writing(tmp_path, monkeypatch):
    _short_lock_timing(monkeypatch, stale_after=60)
    workdir = _workflow(tmp_path)  # saves every 0.5 s
    job = _start_job(workdir)
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 60, "a first checkpoint")
    _take_over(workdir / "state" / "s.lock")
    time.sleep(0.05)  # a save already past its check when we replaced the lock
    written = _stamps(workdir)
    output, _ = job.communicate(timeout=30)
    assert job.returncode == 1, output[-3000:]
    assert "was taken over (now: job job-B" in output, output[-3000:]
    assert "this job stops without writing a checkpoint or a result" in output
    assert _stamps(workdir) == written
    assert not (workdir / "results").exists()
    assert json.loads((workdir / "state" / "s.lock").read_text())["token"] == "not-ours"
    assert _lock_history(workdir)[-1]["event"] == "lost"


def test_results_are_not_written_once_the_lock_file_is_not_ours(tmp_path, monkeypatch):
    """write_results and save read the lock file: no stale flag to trust (no heartbeat here
    beats before the check)."""
    from adaptive_snakemake.job.lock import LearnerLock, LockLost
    from adaptive_snakemake.job.runner import LearnerRun

    workdir = _workflow(tmp_path, goal="{npoints: 10}")
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    (spec,) = load_specs("config/learners.yaml")
    files = LearnerFiles.of("s")
    with LearnerLock(files.lock, heartbeat=30, stale_after=60) as lock:
        run = LearnerRun(spec, files, lock=lock)
        reached = run.run()
        written = _stamps(workdir)
        _take_over(workdir / "state" / "s.lock")
        with pytest.raises(LockLost, match="taken over"):
            run.write_results(reached)
        with pytest.raises(LockLost, match="taken over"):
            run.save()
    assert not files.result.exists() and not files.learner_pickle.exists()
    assert _stamps(workdir) == written
