"""`snakemake --profile profiles/pbs` end to end on the real SLURM test cluster.

PBS is reached through Debian's slurm-wlm-torque wrappers (qsub/qstat/qdel over Slurm):
the closest real PBS-style front end available here. Its quirks are the ones the profile
must live with on Torque-like sites: qstat shows every finished job as C with no exit
status, qstat -x does not exist, and jobs see only SLURM_* variables.

Every run goes through the copied profiles/pbs (executor: pbs, the plugin in
snakemake-executor-plugin-pbs/) exactly as a user runs it; the tests only set the flavour
(or let it be detected) and a 5 s grace through the environment, and pass
--seconds-between-status-checks 2. qstat and qdel shims first on PATH log every call of
the run, whoever makes it; the plugin logs each status round in .snakemake/pbs/events.jsonl.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.accounting import sacct_finished
from tests.workflow_helpers import (
    checkpoint_npoints,
    make_workdir,
    read_result,
    run_snakemake,
    start_snakemake,
    wait_for,
)

POLL = 2  # seconds between snakemake's status rounds
GRACE = 5  # seconds a job finished without an exit marker is given before it is failed
PBS_ARGS = ("--profile", "profiles/pbs", "--seconds-between-status-checks", str(POLL))

SHIM = """#!/bin/sh
# Test shim: log every call of the run (time, arguments), then run the real command.
printf '%s %s\\n' "$(date +%s.%N)" "$*" >> {log}
exec {real} "$@"
"""

EXAMPLE_LEARNERS = 8  # config/learners.yaml: peak (6, mpi4py) + ring (2, process-pool)

RESUMING = """
sweeps:
  slow:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    tasks: 2
    goal: {npoints: 300}
    save_interval: 1
    log_interval: 1
    resources: {runtime: 5, mem_mb: 500}
    fixed: {cost: 0.03}
"""

FAILING = """
defaults:
  executor: sequential
  tasks: 1
  goal: {npoints: 50}
  save_interval: 1
  log_interval: 1
  resources: {runtime: 5, mem_mb: 300}
sweeps:
  good:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {offset: [0.0, 0.5]}
  bad:
    function: examples.functions:always_fails
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
"""

ENDLESS = """
defaults:
  goal: {npoints: 100000}
  save_interval: 1
  log_interval: 1
  resources: {runtime: 5, mem_mb: 300}
sweeps:
  endless:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
    combos: {offset: [0.0, 0.5]}
    fixed: {cost: 0.05}
  endless_mpi:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: mpi4py
    tasks: 2
    fixed: {cost: 0.05}
"""


# helpers --------------------------------------------------------------------------------


def events(workdir: Path, kind: str) -> list[dict]:
    """The plugin's event log: one JSON line per qsub, status round, qdel."""
    path = workdir / ".snakemake" / "pbs" / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def registry(workdir: Path) -> list[tuple[str, str]]:
    """(job id, readable name) of every job the plugin submitted, in submission order."""
    return [(e["job_id"], e["name"]) for e in events(workdir, "qsub")]


def decisions(workdir: Path) -> dict[str, dict]:
    """Each decided job's {"status", "reason"}, from the status rounds."""
    return {
        job_id: {"status": status, "reason": reason}
        for r in events(workdir, "status")
        for job_id, (status, reason) in r.get("decided", {}).items()
    }


def submitted_at(workdir: Path, job_id: str) -> float:
    return next(e["t"] for e in events(workdir, "qsub") if e["job_id"] == job_id)


def qstat_states(job_ids: list[str]) -> dict[str, str]:
    """job_state of each id as the PBS front end shows it (qstat -f)."""
    out = subprocess.run(["qstat", "-f", *job_ids], capture_output=True, text=True).stdout
    states, current = {}, None
    for line in out.splitlines():
        if line.startswith("Job Id:"):
            current = line.split(":", 1)[1].strip()
        elif current and line.strip().startswith("job_state = "):
            states[current] = line.split("=", 1)[1].strip()
    return states


def last_metrics_record(workdir: Path, name: str) -> dict:
    lines = (workdir / "logs" / "learners" / f"{name}.log").read_text().splitlines()
    return json.loads(next(line for line in reversed(lines) if line.startswith('{"v"')))


def calls_per_round(stamps: list[float], rounds: list[dict]) -> list[int]:
    """How many logged qstat calls fell inside each status round of the plugin."""
    slack = 0.05  # the shim stamps its call a moment after the round's clock starts
    return [
        sum(r["started"] - slack <= t <= r["started"] + r["seconds"] + slack for t in stamps)
        for r in rounds
    ]


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def snakemake_output(workdir: Path, log_name: str = "snakemake.out") -> str:
    return (workdir / log_name).read_text()


# fixtures -------------------------------------------------------------------------------


class PbsRuns:
    """Workflow copies for one test, run through profiles/pbs with test settings."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.workdirs: list[Path] = []

    def workdir(self, learners: str | None = None) -> Path:
        workdir = make_workdir(self.tmp_path / f"run{len(self.workdirs)}", learners)
        self.workdirs.append(workdir)
        return workdir

    def shim_calls(self, command: str) -> list[tuple[float, list[str]]]:
        """(time, arguments) of every call of `command` (qstat, qdel) during the test."""
        path = self.tmp_path / f"{command}-calls.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(float(t), args.split()) for t, _, args in (line.partition(" ") for line in lines)]

    def cancel_leftovers(self) -> None:
        """Never leave a test's job on the shared cluster."""
        ids = [job_id for wd in self.workdirs for job_id, _ in registry(wd)]
        if not ids:
            return
        active = [i for i, state in qstat_states(ids).items() if state != "C"]
        if active:
            subprocess.run(["qdel", *active], capture_output=True)


@pytest.fixture
def pbs(slurm_cluster, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runs = PbsRuns(tmp_path)
    for command in ("qstat", "qdel"):
        real = shutil.which(command)
        assert real, f"{command} (slurm-wlm-torque) is not installed"
        shim = bin_dir / command
        shim.write_text(SHIM.format(log=tmp_path / f"{command}-calls.txt", real=real))
        shim.chmod(0o755)
    for name in list(os.environ):
        if name.startswith("SNAKEMAKE_PBS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SNAKEMAKE_PBS_FLAVOUR", "slurm-torque")
    monkeypatch.setenv("SNAKEMAKE_PBS_GRACE_SECONDS", str(GRACE))
    yield runs
    runs.cancel_leftovers()


# tests ----------------------------------------------------------------------------------


def test_example_sweeps_complete_with_one_qstat_per_polling_round(pbs):
    workdir = pbs.workdir()  # the repository's config/learners.yaml: the example sweeps
    started = time.monotonic()
    run_snakemake(workdir, *PBS_ARGS, timeout=420)
    wall = time.monotonic() - started

    summary = (workdir / "results" / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + EXAMPLE_LEARNERS
    assert (workdir / "results" / "plots" / "peak.png").stat().st_size > 0
    assert (workdir / "results" / "plots" / "ring.png").stat().st_size > 0

    jobs = registry(workdir)
    job_ids = [job_id for job_id, _ in jobs]
    assert len(job_ids) == EXAMPLE_LEARNERS == len(set(job_ids))
    names = [row.split(",")[0] for row in summary[1:]]
    for name in names:
        result = read_result(workdir, name)
        assert result["npoints"] >= result["goal"]["npoints"] and result["attempts"] == 1
        # The learner ran inside the PBS job snakemake submitted for it.
        assert last_metrics_record(workdir, name)["job_id"] in job_ids
    assert {last_metrics_record(workdir, n)["job_id"] for n in names} == set(job_ids)
    # ... and streamed its metrics to the collector beside snakemake (qsub -V passes the
    # address), not only into its log.
    collected = [json.loads(line) for line in open(workdir / "logs" / "metrics.jsonl")]
    assert {r["name"] for r in collected if r["status"] == "done"} == set(names)
    assert {r["job_id"] for r in collected} == set(job_ids)

    rules = sorted(name.split(".")[0] for _, name in jobs)
    assert rules == ["learner"] * 2 + ["learner_mpi"] * 6  # ring: process-pool; peak: mpi4py
    # The resources reached Slurm through the wrapper: one node, cores = tasks (the MPI
    # learners ran `mpiexec -n 3`, 2 workers + the manager on the 2 cores, and check that
    # their world has 3 ranks), memory, walltime.
    accounting = sacct_finished(job_ids)
    for job_id in job_ids:
        row = accounting[job_id]
        assert row["State"] == "COMPLETED" and row["ExitCode"] == "0:0", row
        assert row["AllocCPUS"] == "2" and row["ReqMem"] == "1000M", row
        assert row["Timelimit"] == "00:10:00", row
    assert all(d["status"] == "success" for d in decisions(workdir).values())

    # qstat: exactly one call per status round, for every job still undecided.
    rounds = events(workdir, "status")
    shim_calls = pbs.shim_calls("qstat")
    per_round = calls_per_round([t for t, _ in shim_calls], rounds)
    served = sum(r["njobs"] for r in rounds)
    print(
        f"\n[qstat] {EXAMPLE_LEARNERS} PBS jobs, wall {wall:.1f} s, status rounds every {POLL} s"
        f"\n  status rounds with active jobs          {len(rounds)}"
        f"\n  qstat calls, counted by the PATH shim   {len(shim_calls)}"
        f"\n  qstat calls per round                   {per_round}"
        f"\n  jobs asked about per round              {[r['njobs'] for r in rounds]}"
        f"\n  job states answered in all              {served}"
    )
    assert per_round == [1] * len(rounds)  # one qstat per round ...
    assert len(shim_calls) == len(rounds)  # ... and none outside a round
    assert all(
        args[:1] == ["-f"] and len(args) == 1 + r["njobs"]
        for (_, args), r in zip(shim_calls, rounds, strict=True)
    )  # qstat -f ID... for all the round's jobs
    assert max(r["njobs"] for r in rounds) == EXAMPLE_LEARNERS  # one call for all jobs
    assert len(rounds) <= wall / POLL + 2  # bounded by the rounds, whatever the job count
    assert served >= 3 * len(rounds)  # per-job qstat calls would have been `served`


def test_job_removed_with_qdel_is_resubmitted_and_resumes(pbs):
    workdir = pbs.workdir(RESUMING)
    started = time.monotonic()
    proc = start_snakemake(workdir, *PBS_ARGS)
    try:
        wait_for(lambda: checkpoint_npoints(workdir, "slow") >= 40, 180, "a checkpoint")
        ((first, _),) = registry(workdir)
        assert qstat_states([first]) == {first: "R"}
        saved = checkpoint_npoints(workdir, "slow")
        subprocess.run(["qdel", first], check=True, capture_output=True)
        removed = time.time()
        assert proc.wait(timeout=300) == 0, snakemake_output(workdir)[-4000:]
    finally:
        stop(proc)
    wall = time.monotonic() - started

    jobs = registry(workdir)
    assert [name for _, name in jobs] == ["learner_mpi.slow", "learner_mpi.slow"]
    second = jobs[1][0]
    records = decisions(workdir)
    assert records[first]["status"] == "failed"
    assert "no exit marker" in records[first]["reason"]  # qdel: the job never ran its end
    assert records[second]["status"] == "success"
    accounting = sacct_finished([first, second])
    assert accounting[first]["State"].startswith("CANCELLED")
    assert accounting[second]["State"] == "COMPLETED"
    out = snakemake_output(workdir)
    assert f"external jobid '{first}'" in out and f"external jobid '{second}'" in out

    result = read_result(workdir, "slow")
    resubmitted = submitted_at(workdir, second) - removed
    print(
        f"\n[qdel] job {first} removed with >= {saved} points checkpointed; resubmitted as "
        f"{second} {resubmitted:.1f} s later; attempts {result['attempts']}, "
        f"restored_npoints {result['restored_npoints']}, npoints {result['npoints']}, "
        f"wall {wall:.1f} s"
    )
    assert result["attempts"] == 2
    assert result["restored_npoints"] >= saved >= 40
    assert result["npoints"] >= 300


def test_failing_learner_fails_after_its_retries_while_others_finish(pbs, monkeypatch):
    monkeypatch.delenv("SNAKEMAKE_PBS_FLAVOUR")  # detected from the real qstat
    workdir = pbs.workdir(FAILING)
    started = time.monotonic()
    result = run_snakemake(workdir, *PBS_ARGS, check=False, timeout=300)
    wall = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-4000:]
    assert [e["flavour"] for e in events(workdir, "flavour")] == ["slurm-torque"]

    jobs = registry(workdir)
    bad = [job_id for job_id, name in jobs if name == "learner.bad"]
    good = [job_id for job_id, name in jobs if name.startswith("learner.good")]
    retries = yaml.safe_load((workdir / "profiles" / "default" / "config.yaml").read_text())[
        "retries"
    ]
    assert len(bad) == 1 + retries, jobs
    assert len(good) == 2, jobs
    records = decisions(workdir)
    accounting = sacct_finished(bad + good)
    for job_id in bad:
        # The wrapper's qstat says only "C"; the exit marker tells a failure from success.
        assert records[job_id]["status"] == "failed"
        assert records[job_id]["reason"] == "exit marker: exit status 1"
        assert accounting[job_id]["State"] == "FAILED"
    for job_id in good:
        assert records[job_id]["status"] == "success"
        assert accounting[job_id]["State"] == "COMPLETED"
    for name in ("good/offset~0.0", "good/offset~0.5"):
        assert read_result(workdir, name)["npoints"] >= 50
    assert not (workdir / "results" / "bad" / "result.json").exists()
    errors = re.findall(r"^Error in rule learner:$", out, flags=re.MULTILINE)
    assert len(errors) == 1 + retries
    assert all(f"external_jobid: {job_id}\n" in out for job_id in bad)  # snakemake saw each
    # Flavour detection ran `qstat --version` once; every other call was a status round.
    qstat_calls = pbs.shim_calls("qstat")
    assert [args for _, args in qstat_calls].count(["--version"]) == 1
    rounds = events(workdir, "status")
    polls = [t for t, args in qstat_calls if args != ["--version"]]
    assert calls_per_round(polls, rounds) == [1] * len(rounds) and len(polls) == len(rounds)
    print(
        f"\n[failing] bad: jobs {bad} all failed (exit marker 1); good: jobs {good} "
        f"completed; flavour detected: slurm-torque; {len(rounds)} rounds, "
        f"{len(polls)} qstat calls; wall {wall:.1f} s"
    )


@pytest.mark.parametrize("target", ["terminal", "snakemake"])
def test_ctrl_c_cancels_the_jobs_with_qdel(pbs, target):
    """terminal: Ctrl-C signals snakemake's whole foreground process group (the qstat it
    may be running too); snakemake: SIGINT to the snakemake process alone."""
    workdir = pbs.workdir(ENDLESS)
    proc = start_snakemake(workdir, *PBS_ARGS)
    try:

        def all_running():
            ids = [job_id for job_id, _ in registry(workdir)]
            states = qstat_states(ids) if len(ids) == 3 else {}
            return ids if states and set(states.values()) == {"R"} else None

        job_ids = wait_for(all_running, 120, "3 PBS jobs running", poll=0.5)
        time.sleep(2 * POLL)  # a few status rounds, so that Ctrl-C may land in one
        interrupted = time.monotonic()
        if target == "terminal":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=60)
        stopped = time.monotonic() - interrupted
    finally:
        stop(proc)
    out = snakemake_output(workdir)
    assert rc != 0, out[-3000:]
    assert "Terminating processes on user request" in out, out[-3000:]

    wait_for(lambda: set(qstat_states(job_ids).values()) == {"C"}, 30, "qstat to show the jobs C")
    cancelled_after = time.monotonic() - interrupted
    accounting = sacct_finished(job_ids)
    assert all(accounting[i]["State"].startswith("CANCELLED") for i in job_ids), accounting
    qdels = [args for _, args in pbs.shim_calls("qdel")]
    assert len(qdels) == 1 and sorted(qdels[0]) == sorted(job_ids)  # one qdel, each job once
    assert [e["job_ids"] for e in events(workdir, "qdel")] == qdels
    print(
        f"\n[ctrl-c {target}] jobs {job_ids}: snakemake exited {rc} {stopped:.1f} s after "
        f"SIGINT; qdel calls {qdels}; all C / CANCELLED {cancelled_after:.1f} s after SIGINT"
    )
