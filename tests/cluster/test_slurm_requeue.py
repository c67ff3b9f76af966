"""Preemption and requeue on the real SLURM test cluster (issue 10).

A preemptible partition requeues a running job (PreemptMode=REQUEUE does what
`scontrol requeue <jobid>` does): SLURM sends SIGTERM to every process of the job,
SIGKILL KillWait seconds later (5 s here), and runs the batch script again under the SAME
job id (sacct -D then shows a REQUEUED run before the new one). One run of
`snakemake --profile profiles/slurm` with three learners:

- requeued: a process-pool learner whose job is requeued while it computes;
- held: a sequential learner whose job is requeued in held state (`scontrol requeuehold`),
  left held for a while, then released (`scontrol release`);
- mpi: an MPI learner whose job is requeued while it computes.

Each saves on the signal and ends with its goal, resumed from exactly the points it saved.
Snakemake follows a requeued job as the same job to its end (no second submission, no
retry used). An MPI job needs care for that: the mpich wheel's ranks share a segment
/dev/shm/mpich_shm_<id>_0 whose name depends only on the job and step ids; the killed
ranks of the first run leave it behind, and the requeued run's ranks (same ids) attach to
the stale one and fail or hang in MPI_Init. A requeued learner job therefore runs one
short step first (slurm/direct_jobs.py), so that its ranks get another step id.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.test_slurm_workflow import (
    RUN_TIMEOUT_S,
    assert_one_holder_at_a_time,
    cancel_leftovers,
    job_ids_of,
    kill_snakemake,
    lock_history,
    slurm_args,
    slurm_workdir,
)
from tests.workflow_helpers import checkpoint_npoints, read_result, start_snakemake, wait_for

pytestmark = pytest.mark.cluster

REQUEUE = """
defaults:
  save_interval: 1
  log_interval: 1
  resources: {runtime: 10, mem_mb: 500}
  goal: {npoints: 250}
  fixed: {cost: 0.1}
sweeps:
  requeued:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: process-pool
    tasks: 2
    fixed: {cost: 0.2}
  held:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
  mpi:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    tasks: 2
"""
NAMES = ("requeued", "held", "mpi")
GOAL = 250
MIN_SAVED = 20
HOLD_S = 20
SAVED = re.compile(r"received SIGTERM: saved (\d+) points")


def events(workdir: Path, name: str, kind: str) -> list[dict]:
    path = workdir / "state" / f"{name}.lock.history"
    return [e for e in lock_history(workdir, name) if e["event"] == kind] if path.exists() else []


def squeue_state(job_id: str) -> tuple[str, str]:
    """(state, reason) of a job as squeue sees it; ("", "") once it is gone."""
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T|%r"], capture_output=True, text=True
    ).stdout.strip()
    return tuple(out.split("|", 1)) if out else ("", "")


def sacct_runs(job_id: str) -> list[str]:
    """The state of every run of a job, oldest first (-D: requeued runs too)."""
    out = subprocess.run(
        ["sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[0] for line in out.splitlines()]


def metrics(workdir: Path, name: str) -> list[dict]:
    lines = (workdir / "logs" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["name"] == name]


def requeue_once_saving(workdir: Path, name: str, *command: str) -> tuple[str, str]:
    """Once the learner's checkpoint has points, `scontrol <command> <its job>`; returns
    (job id, the learner's log as the first run left it). The requeued run starts the log
    afresh (snakemake empties a job's log), so it is read between the two runs: after the
    first run released the learner's lock, in SLURM's pause before a requeued job starts."""
    wait_for(lambda: checkpoint_npoints(workdir, name) >= MIN_SAVED, 180, f"{name} saving")
    job = json.loads((workdir / "state" / f"{name}.lock").read_text())["job_id"]
    subprocess.run(["scontrol", *command, job], check=True)
    wait_for(lambda: events(workdir, name, "released"), 30, f"{name}'s first run to stop")
    return job, (workdir / "logs" / "learners" / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def requeue(slurm_cluster, tmp_path_factory):
    workdir = slurm_workdir(tmp_path_factory.mktemp("requeue"), slurm_cluster, REQUEUE)
    started = time.monotonic()
    run = start_snakemake(workdir, *slurm_args())
    record = {"jobs": {}, "first_logs": {}}
    try:
        for name, command in (
            ("held", ["requeuehold"]),
            ("requeued", ["requeue"]),
            ("mpi", ["requeue"]),
        ):
            job, log = requeue_once_saving(workdir, name, *command)
            record["jobs"][name], record["first_logs"][name] = job, log

        # While held: pending, held, and snakemake neither gives up on the job nor submits
        # another one for the learner.
        held = record["jobs"]["held"]
        wait_for(lambda: "held" in squeue_state(held)[1], 30, "the job requeued in held state")
        time.sleep(HOLD_S)
        record["while_held"] = squeue_state(held)
        record["snakemake_alive_while_held"] = run.poll() is None
        record["held_submissions_while_held"] = job_ids_of(
            (workdir / "snakemake.out").read_text(), "held"
        )
        subprocess.run(["scontrol", "release", held], check=True)

        record["code"] = run.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            kill_snakemake(run)
        cancel_leftovers(workdir)
    record["runtime"] = time.monotonic() - started
    print(f"requeue run took {record['runtime']:.0f} s")
    record["output"] = (workdir / "snakemake.out").read_text()
    for name, job in record["jobs"].items():
        print(f"{name}: job {job}, sacct -D: {sacct_runs(job)}")
    return workdir, record


def test_snakemake_finishes_every_requeued_learner(requeue):
    workdir, record = requeue
    assert record["code"] == 0, record["output"][-5000:]
    assert (workdir / "results" / "summary.csv").exists()


def test_a_requeued_job_is_followed_as_the_same_job(requeue):
    _, record = requeue
    output = record["output"]
    for name in ("requeued", "held"):
        job = record["jobs"][name]
        # One submission: the requeued run is the same job, no retry was used.
        assert job_ids_of(output, name) == [job], output[-5000:]
        assert sacct_runs(job) == ["REQUEUED", "COMPLETED"], sacct_runs(job)
    assert "Error in rule learner:" not in output


def test_a_held_job_waits_until_released(requeue):
    _, record = requeue
    assert record["snakemake_alive_while_held"]
    state, reason = record["while_held"]
    assert state == "PENDING" and "held" in reason, record["while_held"]
    assert record["held_submissions_while_held"] == [record["jobs"]["held"]]


def test_a_requeued_mpi_job_resumes_as_the_same_job(requeue):
    """The requeued run's ranks are a step of their own (not the stale segment's step 0):
    snakemake follows the job like the others, no retry used."""
    _, record = requeue
    job = record["jobs"]["mpi"]
    assert job_ids_of(record["output"], "mpi") == [job], record["output"][-5000:]
    assert sacct_runs(job) == ["REQUEUED", "COMPLETED"], sacct_runs(job)
    steps = subprocess.run(
        ["sacct", "-n", "-P", "-j", job, "-o", "JobID,NTasks,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"{job}.1|3|COMPLETED" in steps, steps  # the ranks: step 1 of the second run


def test_each_learner_saved_on_the_signal_and_resumed_from_it(requeue):
    workdir, record = requeue
    for name in NAMES:
        saves = [int(n) for n in SAVED.findall(record["first_logs"][name])]
        assert len(saves) == 1 and saves[0] >= MIN_SAVED, record["first_logs"][name][-3000:]
        # The first run's last metrics record: the save on the signal, then "failed".
        first = [r for r in metrics(workdir, name) if r["attempt"] == 1]
        assert first[-1]["status"] == "failed" and first[-1]["npoints"] == saves[0], first[-1]
        result = read_result(workdir, name)
        assert result["npoints"] >= result["goal"]["npoints"] == GOAL, result
        assert result["attempts"] == 2, result
        # Nothing lost: the run that finished began with exactly the points saved.
        assert result["restored_npoints"] == saves[0], (name, result, saves)


def test_no_learner_ran_in_two_jobs_at_once(requeue):
    workdir, record = requeue
    for name in NAMES:
        history = assert_one_holder_at_a_time(workdir, name)
        holders = [e["job_id"] for e in history if e["event"] == "acquired"]
        assert len(holders) == 2 and holders[0] == record["jobs"][name], history
        assert holders[1] == holders[0], history  # the same job id, run twice
