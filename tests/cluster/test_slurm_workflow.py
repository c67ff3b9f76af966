"""`snakemake --profile profiles/slurm` end to end on the real SLURM test cluster.

Four runs, each shared by the tests that look at it (a SLURM run costs tens of seconds of
submission and status-polling latency, so every run serves several checks):

- examples: the example sweeps through SLURM give what a local run gives; MPI learners run
  as one world of `tasks` ranks under srun.
- failures: a launcher without --mpi is caught by the world-size check; a learner whose
  function always raises fails once (its retries refuse at once) with its traceback; the
  others finish.
  Status through squeue (the switch for clusters without accounting).
- interruptions: a learner job is scancel'ed (saves, resubmitted, resumes); another gets a
  1-minute walltime (warned by SIGTERM, saves, resubmitted with more runtime, finishes).
- crash: snakemake is killed with kill -9 twice, once while the rerun's duplicate jobs wait
  for the learners' locks; cancel-orphans, then the README's rerun finishes everything.

The learner rule and the profile are the real ones; the tests only shorten the plugin's
first status check, name the test cluster's account and partition (as the README tells
users to), and, for the walltime test, shorten the warning to fit a 1-minute job.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import adaptive
import pytest

from adaptive_snakemake.slurm.cancel_orphans import main_cancel_orphans
from tests.cluster.accounting import sacct_finished
from tests.workflow_helpers import (
    REPO,
    checkpoint_npoints,
    make_workdir,
    read_result,
    run_snakemake,
    start_snakemake,
    wait_for,
)

pytestmark = pytest.mark.cluster

# Test overrides only: the plugin's first status check after 2 s instead of 40 s.
FAST_STATUS = (
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
)
RUN_TIMEOUT_S = 420
PROFILE_SIGNAL = "slurm_extra: \"'--signal=TERM@60'\""


# ---------------------------------------------------------------------------- helpers


def slurm_workdir(tmp_path: Path, cluster, learners: str, warning_s: int | None = None) -> Path:
    """A workflow copy whose profiles/slurm names the test cluster's account and partition."""
    workdir = make_workdir(tmp_path, learners)
    profile = workdir / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_account", cluster.account), ("slurm_partition", cluster.partition)):
        text, found = re.subn(rf"^  #   {key}: .*$", f'  {key}: "{value}"', text, flags=re.M)
        assert found == 1, f"profiles/slurm/config.yaml has no commented {key} example"
    assert PROFILE_SIGNAL in text, "the walltime warning in profiles/slurm changed"
    if warning_s is not None:
        text = text.replace(PROFILE_SIGNAL, f"slurm_extra: \"'--signal=TERM@{warning_s}'\"")
    profile.write_text(text)
    return workdir


def slurm_args(*extra: str) -> tuple[str, ...]:
    return ("--profile", "profiles/slurm", *FAST_STATUS, *extra)


def run_slurm(workdir: Path, *extra: str, check: bool = True) -> tuple[int, str]:
    """snakemake --profile profiles/slurm, to the end: (exit code, its output)."""
    started = time.monotonic()
    result = run_snakemake(workdir, *slurm_args(*extra), check=check, timeout=RUN_TIMEOUT_S)
    print(f"snakemake --profile profiles/slurm took {time.monotonic() - started:.0f} s")
    return result.returncode, result.stdout + result.stderr


def submissions(output: str) -> list[tuple[str, str, str]]:
    """(SLURM job id, rule, learner name with / as _) of every job snakemake submitted."""
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/(\S+)/\d+\.log\)"
    return re.findall(pattern, output)


def job_ids_of(output: str, learner: str) -> list[str]:
    return [job for job, _, name in submissions(output) if name == learner.replace("/", "_")]


def sacct_steps(job_id: str) -> list[dict[str, str]]:
    fields = ["JobID", "JobName", "NTasks", "State"]
    out = subprocess.run(
        ["sacct", "-n", "-P", "-j", job_id, "-o", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


def lock_history(workdir: Path, name: str) -> list[dict]:
    path = workdir / "state" / f"{name}.lock.history"
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_one_holder_at_a_time(workdir: Path, name: str) -> list[dict]:
    """Replay the lock history: every acquire follows the previous holder's release (or a
    takeover of a lock whose job had ended); nobody ever lost the lock."""
    events = lock_history(workdir, name)
    holder = None
    for event in events:
        kind = event["event"]
        assert kind != "lost", f"{name}: a job lost its lock: {event}"
        if kind == "acquired":
            assert holder is None, f"{name}: job {event['job_id']} acquired while {holder} held"
            holder = event
        elif kind == "released":
            assert holder is not None and holder["token"] == event["token"], (name, event)
            holder = None
        elif kind == "took_over_stale":
            assert holder is not None and holder["token"] == event["previous_token"], event
            ended = sacct_finished([holder["job_id"]])[holder["job_id"]]["End"]
            ended_at = time.mktime(time.strptime(ended, "%Y-%m-%dT%H:%M:%S"))
            assert ended_at <= event["time"] + 1, f"{name}: took over from a live job {holder}"
            holder = None
    assert holder is None, f"{name}: lock still held at the end by {holder}"
    return events


def failed_logs(output: str, name: str) -> list[str]:
    """The learner's log as snakemake printed it for each failed job (show-failed-logs);
    the log file itself starts afresh with every attempt."""
    marker = f"Logfile logs/learners/{name}.log:\n" + "=" * 80 + "\n"
    return [part.split("=" * 80)[0] for part in output.split(marker)[1:]]


def kill_snakemake(run: subprocess.Popen) -> None:
    """kill -9 of snakemake and what it started on this host (the login session dies)."""
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)


def squeue_ids(workdir: Path) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.split("|")[0]
        for line in out.splitlines()
        if os.path.realpath(line.split("|", 1)[1]) == os.path.realpath(workdir)
    ]


def cancel_leftovers(workdir: Path) -> None:
    """After a failed test: no job of ours may linger on the shared test cluster."""
    ids = squeue_ids(workdir)
    if ids:
        subprocess.run(["scancel", *ids], check=False)


# ---------------------------------------------------------------------------- examples


def small_examples() -> str:
    """config/learners.yaml with fewer grid points: the example sweeps, quicker."""
    text = (REPO / "config" / "learners.yaml").read_text()
    for grid, smaller in (
        (
            "combos: {offset: [-0.5, 0.0, 0.5], width: [0.01, 0.1]}",
            "combos: {offset: [-0.5, 0.5], width: [0.01]}",
        ),
        ("combos: {width: [0.2, 0.4]}", "combos: {width: [0.2]}"),
    ):
        assert grid in text, f"config/learners.yaml changed: no {grid}"
        text = text.replace(grid, smaller)
    return text


@pytest.fixture(scope="module")
def examples(slurm_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("examples")
    workdir = slurm_workdir(tmp / "slurm", slurm_cluster, small_examples())
    local = make_workdir(tmp / "local", small_examples())
    try:
        _, output = run_slurm(workdir)
    finally:
        cancel_leftovers(workdir)
    run_snakemake(local)
    return workdir, local, output


def read_summary(workdir: Path) -> dict[str, dict]:
    with open(workdir / "results" / "summary.csv") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def test_example_sweeps_complete_with_the_results_of_a_local_run(examples):
    workdir, local, output = examples
    on_slurm, at_home = read_summary(workdir), read_summary(local)
    assert (
        sorted(on_slurm)
        == sorted(at_home)
        == [
            "peak/offset~-0.5/width~0.01",
            "peak/offset~0.5/width~0.01",
            "ring/width~0.2",
        ]
    )
    assert len(submissions(output)) == 3, "one SLURM job per learner"
    for name, row in on_slurm.items():
        assert list(row) == list(at_home[name])
        result = read_result(workdir, name)
        assert result["npoints"] >= result["goal"]["npoints"]
        assert result["attempts"] == 1 and result["restored_npoints"] == 0
        assert (workdir / "results" / "plots" / f"{result['sweep']}.png").stat().st_size > 0
    # One MPI worker evaluates one point at a time: the data is exactly the local run's.
    for name in ("peak/offset~-0.5/width~0.01", "peak/offset~0.5/width~0.01"):
        learners = []
        for root in (workdir, local):
            learner = adaptive.Learner1D(None, bounds=(-1, 1))
            learner.load(str(root / "results" / name / "learner.pickle"))
            learners.append(learner)
        assert learners[0].data == learners[1].data
        assert on_slurm[name]["npoints"] == at_home[name]["npoints"]


def test_slurm_jobs_stream_their_metrics_to_the_collector(examples):
    """The collector started beside snakemake hears from learners running in SLURM jobs."""
    workdir, _, output = examples
    stored = [json.loads(line) for line in open(workdir / "logs" / "metrics.jsonl")]
    names = {name for name in read_summary(workdir)}
    assert {record["name"] for record in stored} == names
    slurm_jobs = {job for job, _, _ in submissions(output)}
    assert {record["job_id"] for record in stored} == slurm_jobs
    assert {r["name"] for r in stored if r["status"] == "done"} == names


def test_mpi_learner_runs_as_one_world_of_tasks_ranks_under_srun(examples):
    workdir, _, output = examples
    for job_id, rule, name in submissions(output):
        steps = sacct_steps(job_id)
        log = (workdir / "logs" / "learners" / f"{name.replace('_', '/')}.log").read_text()
        assert "MPI world size" not in log
        if rule == "learner_mpi":
            # The only srun step of an MPI learner job is the launcher: 2 ranks.
            launcher = [s for s in steps if s["JobID"] == f"{job_id}.0"]
            assert launcher and launcher[0]["NTasks"] == "2", steps
            assert launcher[0]["JobName"] == "python", steps
        else:
            # Other learners: one task, the snakemake that runs the rule (jobstep's srun).
            assert [s["NTasks"] for s in steps if s["JobID"] == f"{job_id}.0"] == ["1"], steps


# ---------------------------------------------------------------------------- failures

FAILURES = """
defaults:
  goal: {npoints: 40}
  save_interval: 2
  log_interval: 2
  resources: {runtime: 5, mem_mb: 500}
sweeps:
  fails:
    function: examples.functions:always_fails
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
  wrongmpi:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    tasks: 2
  fine:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
"""


@pytest.fixture(scope="module")
def failures(slurm_cluster, tmp_path_factory):
    workdir = slurm_workdir(tmp_path_factory.mktemp("failures"), slurm_cluster, FAILURES)
    try:
        code, output = run_slurm(
            workdir,
            # A launcher that does not wire the ranks into one MPI world (no --mpi).
            "--default-resources",
            "mpi_launcher='srun'",
            "slurm_extra='--signal=TERM@60'",
            # The switch for clusters without accounting (MinJobAge here is 300 s).
            "--slurm-status-command",
            "squeue",
            check=False,
        )
    finally:
        cancel_leftovers(workdir)
    assert code != 0, "two learners failed, so must snakemake"
    return workdir, output


def test_status_through_squeue_when_asked(failures):
    _, output = failures
    assert "Falling back to 'sacct'" not in output
    assert "Detailed failure reason unavailable (status command is not 'sacct')" in output


def test_launcher_without_mpi_type_is_a_clear_failure(failures):
    workdir, output = failures
    jobs = job_ids_of(output, "wrongmpi")
    assert len(jobs) == 4, "first attempt and 3 retries"
    assert {row["State"] for row in sacct_finished(jobs).values()} == {"FAILED"}
    log = (workdir / "logs" / "learners" / "wrongmpi.log").read_text()
    assert "MPI world size is 1 but this learner asked for 2 ranks" in log
    assert "srun --mpi=pmi2" in log  # the message says how to fix it
    # No wrong result: no rank ran the learner on its own.
    assert not (workdir / "results" / "wrongmpi").exists()
    assert not (workdir / "state" / "wrongmpi.pickle").exists()
    assert not (workdir / "state" / "wrongmpi.lock.history").exists()


def test_failing_learner_fails_after_its_retries_and_the_others_finish(failures):
    workdir, output = failures
    jobs = job_ids_of(output, "fails")
    assert len(jobs) == 4, "first attempt and 3 retries"
    assert {row["State"] for row in sacct_finished(jobs).values()} == {"FAILED"}
    assert not (workdir / "results" / "fails").exists()
    # A code failure: the function ran in the first attempt only; the retries refused at
    # once (retries_on_error: 0), the last one repeating the traceback in the log.
    log = (workdir / "logs" / "learners" / "fails.log").read_text()
    assert "not retried: the learner's function raised in attempt 1" in log
    assert "Traceback (most recent call last)" in log
    assert "ValueError: always_fails was called with x=" in log
    assert json.loads((workdir / "state" / "fails.json").read_text())["attempts"] == 1
    assert json.loads((workdir / "state" / "fails.failed.json").read_text())["code_failures"] == 1
    assert "Error in rule learner" in output and "logs/learners/fails.log" in output

    fine = read_result(workdir, "fine")
    assert fine["npoints"] >= 40 and fine["attempts"] == 1
    assert not (workdir / "results" / "summary.csv").exists()  # needs every learner


# ---------------------------------------------------------------------------- interruptions

INTERRUPTIONS = """
defaults:
  tasks: 2
  save_interval: 2
  log_interval: 2
  resources: {runtime: 10, mem_mb: 500}
sweeps:
  cancelled:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    goal: {npoints: 250}
    fixed: {cost: 0.1}
  walltime:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: process-pool
    goal: {duration: 55}
    fixed: {cost: 0.05}
    resources: {runtime: 1, mem_mb: 500}
"""


@pytest.fixture(scope="module")
def interruptions(slurm_cluster, tmp_path_factory):
    # The profile warns 60-90 s before the limit; a 1-minute job needs a shorter warning.
    workdir = slurm_workdir(
        tmp_path_factory.mktemp("interruptions"), slurm_cluster, INTERRUPTIONS, warning_s=10
    )
    started = time.monotonic()
    run = start_snakemake(workdir, *slurm_args())
    try:
        lock = workdir / "state" / "cancelled.lock"
        wait_for(lambda: checkpoint_npoints(workdir, "cancelled") >= 30, 180, "a checkpoint")
        victim = json.loads(lock.read_text())["job_id"]
        subprocess.run(["scancel", victim], check=True)
        code = run.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            kill_snakemake(run)
        cancel_leftovers(workdir)
    print(f"interruptions run took {time.monotonic() - started:.0f} s")
    output = (workdir / "snakemake.out").read_text()
    assert code == 0, output[-5000:]
    return workdir, output, victim


def test_cancelled_job_is_resubmitted_and_resumes(interruptions):
    workdir, output, victim = interruptions
    jobs = job_ids_of(output, "cancelled")
    assert jobs[0] == victim and len(jobs) == 2, jobs
    states = sacct_finished(jobs)
    assert states[victim]["State"].startswith("CANCELLED")
    assert states[jobs[1]]["State"] == "COMPLETED"
    logs = failed_logs(output, "cancelled")
    assert any("received SIGTERM: saved" in log for log in logs), logs
    result = read_result(workdir, "cancelled")
    assert result["attempts"] == 2
    assert result["restored_npoints"] >= 30
    assert result["npoints"] >= 250
    assert_one_holder_at_a_time(workdir, "cancelled")


def test_walltime_warning_saves_and_the_retry_gets_more_runtime(interruptions):
    workdir, output, _ = interruptions
    jobs = job_ids_of(output, "walltime")
    assert len(jobs) == 2, jobs
    first, second = (sacct_finished(jobs)[job] for job in jobs)
    assert first["Timelimit"] == "00:01:00" and second["Timelimit"] == "00:02:00"
    # Stopped itself after the warning, before SLURM's time-limit kill (state TIMEOUT).
    assert first["State"] == "FAILED", first
    assert second["State"] == "COMPLETED", second
    pattern = r"received SIGTERM: saved (\d+) points; exiting so a retry resumes"
    stops = {int(m) for log in failed_logs(output, "walltime") for m in re.findall(pattern, log)}
    assert len(stops) == 1, f"not one walltime warning in the first attempt's log: {stops}"
    result = read_result(workdir, "walltime")
    assert result["attempts"] == 2 and result["reached"] == "duration"
    # Nothing lost: the retry began with exactly the points saved on the warning.
    assert result["restored_npoints"] == stops.pop() > 0
    assert_one_holder_at_a_time(workdir, "walltime")


# ---------------------------------------------------------------------------- crash

CRASH = """
defaults:
  tasks: 2
  save_interval: 2
  log_interval: 2
  resources: {runtime: 10, mem_mb: 500}
sweeps:
  quick:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
    goal: {npoints: 20}
  longmpi:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    goal: {duration: 60}
    fixed: {cost: 0.05}
  longpool:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: process-pool
    goal: {duration: 60}
    fixed: {cost: 0.05}
"""
LONG = ("longmpi", "longpool")


def waiting_jobs(workdir: Path, name: str) -> set[str]:
    path = workdir / "state" / f"{name}.lock.history"
    if not path.exists():
        return set()
    return {e["job_id"] for e in lock_history(workdir, name) if e["event"] == "waiting"}


@pytest.fixture(scope="module")
def crash(slurm_cluster, tmp_path_factory):
    workdir = slurm_workdir(tmp_path_factory.mktemp("crash"), slurm_cluster, CRASH)
    started = time.monotonic()
    record = {}
    try:
        first = start_snakemake(workdir, *slurm_args(), log_name="run1.out")
        try:
            wait_for(lambda: (workdir / "results" / "quick" / "result.json").exists(), 180, "quick")
            # ... and snakemake has seen its job end. (Learner jobs run no snakemake inside:
            # the main snakemake records a finished job when its status round sees it, so a
            # learner whose job ended after the last round before a crash is run again,
            # writing its results from its checkpoint, computing nothing.)
            wait_for(
                lambda: "(Rule: learner)" in (workdir / "run1.out").read_text(),
                60,
                "snakemake to see quick's job end",
            )
            for name in LONG:
                wait_for(
                    lambda n=name: checkpoint_npoints(workdir, n) >= 20, 120, f"{name} running"
                )
        finally:
            kill_snakemake(first)
        quick = workdir / "results" / "quick" / "result.json"
        record["quick"] = (quick.read_bytes(), quick.stat().st_mtime_ns)

        # The README's rerun, while the first run's jobs still compute: the rerun's jobs for
        # the long learners must wait for the locks. Then snakemake dies again.
        run_snakemake(workdir, "--unlock")
        second = start_snakemake(workdir, *slurm_args(), log_name="run2.out")
        try:
            for name in LONG:
                wait_for(lambda n=name: waiting_jobs(workdir, n), 120, f"a 2nd job for {name}")
        finally:
            kill_snakemake(second)
        record["npoints_at_cancel"] = {name: checkpoint_npoints(workdir, name) for name in LONG}

        # The README's recovery: cancel what the dead runs left, unlock, rerun.
        record["dry_run"] = main_cancel_orphans(["--directory", str(workdir), "--dry-run"])
        record["cancel"] = main_cancel_orphans(["--directory", str(workdir)])
        record["left_after_cancel"] = squeue_ids(workdir)
        run_snakemake(workdir, "--unlock")
        _, record["output3"] = run_slurm(workdir)
    finally:
        cancel_leftovers(workdir)
    print(f"crash scenario took {time.monotonic() - started:.0f} s")
    record["output1"] = (workdir / "run1.out").read_text()
    record["output2"] = (workdir / "run2.out").read_text()
    return workdir, record


def test_cancel_orphans_cancels_this_workflows_jobs(crash):
    workdir, record = crash
    assert record["dry_run"] == 0 and record["cancel"] == 0
    assert record["left_after_cancel"] == []
    orphans = [
        job
        for output in (record["output1"], record["output2"])
        for job, _, name in submissions(output)
        if name in LONG
    ]
    assert len(orphans) == 4, "each long learner: a job of run 1 and a waiting one of run 2"
    states = sacct_finished(orphans)
    assert {row["State"].split()[0] for row in states.values()} == {"CANCELLED"}


def test_no_learner_ran_in_two_jobs_at_once(crash):
    workdir, record = crash
    run2_jobs = {job for job, _, _ in submissions(record["output2"])}
    for name in LONG:
        events = assert_one_holder_at_a_time(workdir, name)
        holders = [e["job_id"] for e in events if e["event"] == "acquired"]
        # The first run's job, then the last run's: run 2's job only ever waited.
        assert len(holders) == 2 and not run2_jobs & set(holders), events
        assert waiting_jobs(workdir, name) & run2_jobs, events


def test_every_learner_reaches_its_goal_and_finished_ones_are_not_rerun(crash):
    workdir, record = crash
    quick = workdir / "results" / "quick" / "result.json"
    assert (quick.read_bytes(), quick.stat().st_mtime_ns) == record["quick"]
    for output in (record["output2"], record["output3"]):
        assert not job_ids_of(output, "quick"), "the finished learner was submitted again"
    for name in LONG:
        result = read_result(workdir, name)
        assert result["reached"] == "duration" and result["elapsed"] >= 60
        assert result["attempts"] == 2, result
        assert result["restored_npoints"] >= record["npoints_at_cancel"][name] > 0
    summary = (workdir / "results" / "summary.csv").read_text()
    assert all(name in summary for name in ("quick", *LONG))
