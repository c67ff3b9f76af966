"""The ipyparallel, dask-mpi and dask executors, run for real in learner jobs: to the goal,
through a SIGTERM to every process of the job (as SLURM sends it) and a resume, per-point
retries, and a dask scheduler file that no scheduler answers. No cluster process may
outlive its job."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.unit.test_runner import _meta, _set_goal, _start_job, _with, _workflow
from tests.workflow_helpers import environment, wait_for

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
EXECUTORS = ["ipyparallel", "dask-mpi", "dask"]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A dask cluster the user runs: 2 single-threaded workers, and its scheduler file."""
    home = tmp_path_factory.mktemp("dask")
    (home / "examples").symlink_to(os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
    scheduler_file = home / "scheduler.json"
    script = textwrap.dedent(
        f"""
        import sys, time
        from distributed import Client, LocalCluster
        if __name__ == "__main__":
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=0,
                                   dashboard_address=None)
            Client(cluster).write_scheduler_file({str(scheduler_file)!r})
            while sys.stdin.read(1):
                pass
        """
    )
    env = environment()
    env["PYTHONPATH"] = os.pathsep.join([str(home), env.get("PYTHONPATH", "")])
    cluster = subprocess.Popen(
        [sys.executable, "-c", script], cwd=home, env=env, stdin=subprocess.PIPE
    )
    wait_for(scheduler_file.exists, 60, "the dask scheduler file")
    yield scheduler_file
    cluster.stdin.close()  # EOF: the cluster closes
    try:
        cluster.wait(timeout=30)
    except subprocess.TimeoutExpired:
        cluster.kill()


def _executor_workflow(tmp_path, executor, scheduler_file=None, **kwargs):
    tasks = {"ipyparallel": 3, "dask-mpi": 4, "dask": 1}[executor]
    workdir = _workflow(tmp_path, executor=executor, tasks=tasks, **kwargs)
    if executor == "dask":
        _with(workdir, scheduler_file=f"'{scheduler_file}'")
    return workdir


def _start(workdir, executor):
    if executor == "dask-mpi":
        return _start_job(workdir, MPIEXEC, "-n", "4")
    return _start_job(workdir)


def _job_processes(job) -> list:
    """The job and everything it started (MPI ranks, engines, controller, schedulers)."""
    root = psutil.Process(job.pid)
    return [root, *root.children(recursive=True)]


def _no_process_left(processes) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, [" ".join(p.cmdline()) for p in alive if p.is_running()]


def _result(workdir):
    return json.loads((workdir / "results" / "s" / "result.json").read_text())


def _assert_engines_under_mpiexec(processes) -> None:
    """ipyparallel's 2 engines run under `mpiexec -n 2` (the launcher the workflow uses
    locally): each engine's parent is mpiexec's proxy, a child of mpiexec."""
    engines = [p for p in processes if p.cmdline()[1:4] == [*ENGINE_MODULE, "ipengine"]]
    assert len(engines) == 2, [p.cmdline() for p in processes]
    for engine in engines:
        launchers = [Path(p.cmdline()[0]).name for p in engine.parents()[:2]]
        assert launchers[1] == "mpiexec" and "-n" in engine.parents()[1].cmdline(), launchers


ENGINE_MODULE = ["-m", "adaptive_snakemake.job.executors"]
# What the runner logs once its engines are checked to be one MPI world (executors.py).
ENGINES_UNDER_MPIEXEC = "the engines are one MPI world of 2 ranks started by `mpiexec -n 2`"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_learner_reaches_its_goal(tmp_path, executor, request):
    scheduler_file = request.getfixturevalue("dask_cluster") if executor == "dask" else None
    workdir = _executor_workflow(tmp_path, executor, scheduler_file, goal="{npoints: 60}")
    job = _start(workdir, executor)
    wait_for(lambda: (workdir / "state" / "s.json").exists(), 60, "the learner to start")
    processes = _job_processes(job)
    if executor == "ipyparallel":
        _assert_engines_under_mpiexec(processes)
    output, _ = job.communicate(timeout=90)
    assert job.returncode == 0, output[-3000:]
    assert _result(workdir)["npoints"] == 60
    if executor == "ipyparallel":
        assert ENGINES_UNDER_MPIEXEC in output, output[-3000:]
    _no_process_left(processes)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_sigterm_to_every_process_saves_and_a_rerun_resumes(tmp_path, executor, request):
    """SLURM's walltime warning or scancel signals every process of the job: the engines,
    controller, scheduler and workers ignore it, the runner saves, then stops them."""
    scheduler_file = request.getfixturevalue("dask_cluster") if executor == "dask" else None
    workdir = _executor_workflow(tmp_path, executor, scheduler_file)
    job = _start(workdir, executor)
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 90, "a first checkpoint")
    time.sleep(0.5)
    processes = _job_processes(job)
    if executor != "dask":
        assert len(processes) >= 3, [p.cmdline() for p in processes]
    if executor == "ipyparallel":
        _assert_engines_under_mpiexec(processes)
    for process in processes:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    output, _ = job.communicate(timeout=60)
    assert job.returncode != 0
    assert "received SIGTERM" in output, output[-3000:]
    if executor == "ipyparallel":  # mpiexec forwarded the TERM; the engines ignored it
        assert ENGINES_UNDER_MPIEXEC in output, output[-3000:]
    assert "the learner failed" not in output  # no point lost to a dying worker
    saved = _meta(workdir)["npoints"]
    assert saved > 20
    assert not (workdir / "state" / "s.lock").exists()
    _no_process_left(processes)

    _set_goal(workdir, f"{{npoints: {saved + 30}}}")
    job = _start(workdir, executor)
    output, _ = job.communicate(timeout=90)
    assert job.returncode == 0, output[-3000:]
    result = _result(workdir)
    assert result["restored_npoints"] == saved
    assert result["npoints"] == saved + 30
    assert result["attempts"] == 2


@pytest.mark.timeout(120)
@pytest.mark.parametrize("executor", ["ipyparallel", "dask"])
def test_points_that_fail_now_and_then_are_evaluated_again(tmp_path, executor, request):
    """dask would hand back its cached error for a resubmitted point (pure=True)."""
    scheduler_file = request.getfixturevalue("dask_cluster") if executor == "dask" else None
    workdir = _executor_workflow(
        tmp_path, executor, scheduler_file, goal="{npoints: 40}", function="flaky"
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    learners = workdir / "config" / "learners.yaml"
    learners.write_text(
        learners.read_text().replace("fixed: {cost: 0.002}", f"fixed: {{marks_dir: '{marks}'}}")
    )
    job = _start(workdir, executor)
    output, _ = job.communicate(timeout=90)
    assert job.returncode == 0, output[-3000:]
    assert "evaluating it again (1 of 2 retries)" in output
    assert _result(workdir)["npoints"] == 40


@pytest.mark.timeout(60)
def test_stale_scheduler_file_fails_before_the_learner_starts(tmp_path):
    """A scheduler file left by a cluster that has ended: a clear error, nothing written."""
    import socket

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    stale = tmp_path / "old-scheduler.json"
    stale.write_text(json.dumps({"type": "Scheduler", "address": f"tcp://127.0.0.1:{port}"}))
    workdir = _executor_workflow(tmp_path, "dask", stale, goal="{npoints: 20}")
    env_timeout = {"ADAPTIVE_SNAKEMAKE_DASK_CONNECT_SECONDS": "3"}
    os.environ.update(env_timeout)
    try:
        job = _start(workdir, "dask")
    finally:
        os.environ.pop("ADAPTIVE_SNAKEMAKE_DASK_CONNECT_SECONDS")
    output, _ = job.communicate(timeout=45)
    assert job.returncode == 2, output[-3000:]
    assert f"no dask scheduler answers at tcp://127.0.0.1:{port}" in output
    assert str(stale) in output
    assert not (workdir / "state").exists() or not any((workdir / "state").iterdir())


@pytest.mark.timeout(90)
def test_runner_killed_hard_leaves_no_ipcluster_behind(tmp_path):
    """kill -9 of the runner (OOM killer, a node's cleanup): its engines and controller
    notice that their parent is gone and exit, with the controller's schedulers."""
    workdir = _executor_workflow(tmp_path, "ipyparallel")
    job = _start(workdir, "ipyparallel")
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 90, "a first checkpoint")
    processes = _job_processes(job)
    assert len(processes) >= 4, [p.cmdline() for p in processes]  # runner, controller, 2 engines
    _assert_engines_under_mpiexec(processes)  # not the runner's children: they watch it
    (controller,) = [p for p in processes if p.ppid() == job.pid and "ipcontroller" in p.cmdline()]
    profile_dir = Path(controller.environ()["IPP_PROFILE_DIR"])
    assert profile_dir.is_dir()
    job.kill()
    job.communicate(timeout=30)
    _no_process_left(processes)
    assert not profile_dir.exists()  # the runner's: the controller removed it


@pytest.mark.timeout(60)
def test_engines_that_do_not_register_fail_before_the_learner_starts(tmp_path, monkeypatch):
    """A launcher that ends without starting the engines: a clear error naming it, exit 2
    (not a failure of the learner's code), nothing written, no process left."""
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER", "false --no-engines")
    workdir = _executor_workflow(tmp_path, "ipyparallel", goal="{npoints: 20}")
    job = _start(workdir, "ipyparallel")
    time.sleep(1)
    processes = _job_processes(job)
    output, _ = job.communicate(timeout=45)
    assert job.returncode == 2, output[-3000:]
    assert (
        "only 0 of 2 ipyparallel engines registered with the controller (the launcher ended)"
        in output
    )
    assert "`false --no-engines -n 2 ipengine`" in output
    assert not (workdir / "state" / "s.pickle").exists()
    assert not (workdir / "results").exists()
    _no_process_left(processes)


@pytest.mark.timeout(90)
def test_a_dead_engine_stops_the_learner_saved_for_a_retry(tmp_path):
    """An engine killed (OOM killer, a crash in the function) ends the launcher and every
    engine, as a dead rank ends an MPI job: the runner saves and exits, instead of waiting
    for engines until its walltime; nothing is left running."""
    workdir = _executor_workflow(tmp_path, "ipyparallel")
    job = _start(workdir, "ipyparallel")
    wait_for(lambda: _meta(workdir).get("npoints", 0) > 20, 90, "a first checkpoint")
    processes = _job_processes(job)
    engine = next(p for p in processes if p.cmdline()[1:4] == [*ENGINE_MODULE, "ipengine"])
    engine.kill()
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGUSR1, output[-3000:]
    assert "the ipyparallel engines ended while the learner ran" in output, output[-3000:]
    assert "received SIGUSR1: saved" in output
    assert "the learner failed" not in output  # not a code failure: a retry resumes it
    assert _meta(workdir)["npoints"] > 20
    _no_process_left(processes)


@pytest.mark.timeout(90)
def test_an_engine_on_another_node_needs_no_file_of_the_runner(tmp_path, monkeypatch):
    """Another node of the allocation has no copy of the runner's profile directory (it is in
    the runner's /tmp): an engine started there, as srun starts it (the job's environment,
    with ipyparallel's $IPP_CONNECTION_INFO), registers with a directory of its own and
    removes it when it stops."""
    from adaptive_snakemake.job import executors

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER", MPIEXEC)
    cluster = executors._IPCluster(1)
    try:
        client = cluster.start()
        env = {**cluster._engine_set().get_env(), "IPP_PROFILE_DIR": str(tmp_path / "elsewhere")}
        remote = subprocess.Popen(
            [sys.executable, *ENGINE_MODULE, "ipengine"], env={**environment(), **env}
        )
        wait_for(lambda: len(client.ids) == 2, 60, "the engine of the other node")
        dirs = client[:].apply_sync(os.getenv, "IPP_PROFILE_DIR")
        (profile,) = {p for p in dirs if p != cluster.profile_dir}
        assert Path(profile).is_dir() and not (tmp_path / "elsewhere").exists()
    finally:
        cluster.stop()
    remote.send_signal(executors.STOP_SIGNAL)  # as srun forwards it
    remote.wait(timeout=30)
    assert not Path(profile).exists()
