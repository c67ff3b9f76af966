"""The ipyparallel and dask-mpi executors through `snakemake --profile profiles/slurm` on the
real SLURM test cluster, in one run (a SLURM run costs tens of seconds of latency): each
learner's first job is scancel'ed after a checkpoint (SIGTERM to every process of the job:
the engines, controller, dask scheduler and workers ignore it, the runner saves and stops
them), snakemake resubmits it, and the retry resumes and reaches the goal. Both are MPI
jobs: dask-mpi's ranks and ipyparallel's engines are one srun step each. No ipcluster or
dask process may be left behind on the node. Engines that srun starts as separate programs
(no --mpi) are refused before the learner starts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import psutil
import pytest

from tests.cluster.accounting import sacct_finished
from tests.cluster.test_slurm_workflow import (
    RUN_TIMEOUT_S,
    assert_one_holder_at_a_time,
    cancel_leftovers,
    failed_logs,
    job_ids_of,
    kill_snakemake,
    sacct_steps,
    slurm_args,
    slurm_workdir,
    submissions,
)
from tests.unit.test_runner import _job_arguments, _workflow
from tests.workflow_helpers import (
    checkpoint_npoints,
    environment,
    read_result,
    start_snakemake,
    wait_for,
)

pytestmark = pytest.mark.cluster

LEARNERS = """
defaults:
  tasks: 3
  save_interval: 1
  log_interval: 2
  goal: {npoints: 150}
  resources: {runtime: 10, mem_mb: 1000}
sweeps:
  ipp:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: ipyparallel
    fixed: {cost: 0.1}
  daskmpi:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: dask-mpi
    fixed: {cost: 0.1}
"""
NAMES = ("ipp", "daskmpi")


def _cluster_processes(workdir, since: float) -> list[str]:
    """The learner jobs' processes (runner, ipcluster with its engines under srun, dask-mpi
    ranks) started since the run began, still alive on the (only) node."""
    left = []
    for process in psutil.process_iter(["cmdline", "cwd", "create_time"]):
        if process.info["create_time"] < since:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        # The run's own (by their working directory): other tests may run beside it.
        if "adaptive_snakemake.job" in cmdline and process.info["cwd"] == str(workdir):
            left.append(cmdline[:200])
    return left


@pytest.fixture(scope="module")
def executors_run(slurm_cluster, tmp_path_factory):
    workdir = slurm_workdir(tmp_path_factory.mktemp("executors"), slurm_cluster, LEARNERS)
    started, began = time.monotonic(), time.time()
    run = start_snakemake(workdir, *slurm_args())
    victims = {}
    try:
        for name in NAMES:
            wait_for(lambda n=name: checkpoint_npoints(workdir, n) >= 20, 240, f"{name} saves")
            lock = json.loads((workdir / "state" / f"{name}.lock").read_text())
            victims[name] = lock["job_id"]
            subprocess.run(["scancel", victims[name]], check=True)
        code = run.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            kill_snakemake(run)
        cancel_leftovers(workdir)
    print(f"executors run took {time.monotonic() - started:.0f} s")
    output = (workdir / "snakemake.out").read_text()
    assert code == 0, output[-5000:]
    return workdir, output, victims, began


@pytest.mark.parametrize("name", NAMES)
def test_cancelled_job_saves_and_the_retry_resumes_to_the_goal(executors_run, name):
    workdir, output, victims, _ = executors_run
    jobs = job_ids_of(output, name)
    assert jobs[0] == victims[name] and len(jobs) == 2, jobs
    states = sacct_finished(jobs)
    assert states[jobs[0]]["State"].startswith("CANCELLED")
    assert states[jobs[1]]["State"] == "COMPLETED"
    logs = failed_logs(output, name)
    assert any("received SIGTERM: saved" in log for log in logs), logs
    assert not any("the learner failed" in log for log in logs), logs
    result = read_result(workdir, name)
    assert result["attempts"] == 2
    assert result["restored_npoints"] >= 20
    assert result["npoints"] >= 150
    assert_one_holder_at_a_time(workdir, name)


def test_dask_mpi_and_ipyparallel_engines_run_as_one_world_under_srun(executors_run):
    """Both get `tasks` SLURM tasks (rule learner_mpi). dask-mpi's job runs as 3 ranks; the
    ipyparallel job's python runs once and its 2 engines are the only srun step."""
    workdir, output, _, _ = executors_run
    for job_id, rule, name in submissions(output):
        assert rule == "learner_mpi"
        steps = [s for s in sacct_steps(job_id) if s["JobID"].startswith(f"{job_id}.")]
        numbered = [s for s in steps if s["JobID"].split(".")[1].isdigit()]
        assert len(numbered) == 1, steps
        expected = "3" if name == "daskmpi" else "2"  # scheduler, runner, worker | engines
        assert numbered[0]["JobID"] == f"{job_id}.0" and numbered[0]["NTasks"] == expected
    log = (workdir / "logs" / "learners" / "ipp.log").read_text()
    launched = (
        r"ipcluster up: controller and 2 engines in [\d.]+ s; the engines are one MPI world of 2 "
        r"ranks started by `srun --mpi=pmi2 --kill-on-bad-exit=1 --overcommit -n 2` "
        r"\(SLURM step 0\) on "
    )
    assert re.search(launched, log), log[-3000:]


def test_no_cluster_process_outlives_its_job(executors_run):
    workdir, _, _, began = executors_run
    deadline = time.monotonic() + 15
    while _cluster_processes(workdir, began) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _cluster_processes(workdir, began)


def test_engines_started_as_separate_programs_are_refused(slurm_cluster, tmp_path):
    """`srun` without --mpi starts the engines as separate programs of world size 1: the job
    (in an allocation of 3 tasks) refuses them before the learner starts, naming the setting
    to fix, and leaves no process behind."""
    workdir = _workflow(tmp_path, goal="{npoints: 20}", executor="ipyparallel", tasks=3)
    env = environment()
    env.update(ADAPTIVE_SNAKEMAKE_MONITOR="off", ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER="srun")
    began = time.time()
    allocation = ["salloc", "-n", "3", "-t", "5", "-A", slurm_cluster.account]
    job = subprocess.run(
        [*allocation, "-p", slurm_cluster.partition, sys.executable, *_job_arguments(workdir)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = job.stdout + job.stderr
    assert job.returncode == 2, output[-3000:]
    assert "the 2 ipyparallel engines are not one MPI world (world sizes [1]" in output, output
    assert "set mpi_launcher (profile default-resources) to 'srun --mpi=pmi2'" in output
    assert not (workdir / "state" / "s.pickle").exists()
    assert not (workdir / "results").exists()
    assert not _cluster_processes(workdir, began)
