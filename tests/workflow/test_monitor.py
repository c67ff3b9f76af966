"""Live metrics from real learner jobs: collector, status table, stale jobs, kill -9."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

import adaptive_snakemake
from adaptive_snakemake.metrics.pidfile import running_collector
from tests.workflow_helpers import make_workdir, start_snakemake, wait_for

pytestmark = pytest.mark.workflow

LEARNERS = """
sweeps:
  watched:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: process-pool
    tasks: 1
    goal: {npoints: 250}
    save_interval: 1
    log_interval: 0.5
    fixed: {cost: 0.03}
"""


def _row(workdir, name="watched"):
    table = adaptive_snakemake.status(workdir)
    rows = table[table["name"] == name]
    return rows.iloc[0] if len(rows) else None


def _learner_process(name):
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "adaptive_snakemake.job" in cmdline and f"results/{name}/result.json" in cmdline:
            return process
    return None


def test_records_reach_the_collector_status_and_history(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    run = start_snakemake(workdir)
    try:
        wait_for(lambda: running_collector(workdir), 60, "the collector to start")

        def running_with_points():
            row = _row(workdir)
            return row is not None and row["state"] == "running" and row["npoints"] > 0

        wait_for(running_with_points, 90, "a running learner with points in the status")
        row = _row(workdir)
        assert row["attempts"] == 1 and isinstance(row["host"], str)

        # A job that stops reporting (here: stopped) is flagged stale after 3 log intervals.
        job = _learner_process("watched")
        job.suspend()
        try:
            wait_for(lambda: _row(workdir)["state"] == "stale", 30, "the learner to be stale")
        finally:
            job.resume()
        wait_for(lambda: _row(workdir)["state"] == "running", 30, "the learner to run again")
        assert run.wait(timeout=300) == 0, (workdir / "snakemake.out").read_text()[-3000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)

    assert _row(workdir)["state"] == "done"
    assert running_collector(workdir) is None  # stopped with the workflow
    history = adaptive_snakemake.load_metrics(workdir)
    mine = history[history["name"] == "watched"]
    assert len(mine) >= 5
    assert mine["npoints"].is_monotonic_increasing
    assert "done" in set(mine["status"])
    stored = [json.loads(line) for line in open(workdir / "logs" / "metrics.jsonl")]
    assert {
        "v",
        "name",
        "attempt",
        "job_id",
        "host",
        "pid",
        "t",
        "elapsed",
        "npoints",
        "loss",
        "rate",
        "cpu",
        "rss_mb",
        "status",
    } <= set(stored[-1])
    table = subprocess.run(
        [sys.executable, "-m", "adaptive_snakemake.cli", "status"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "1 learners: 1 done" in table.replace("1 learner:", "1 learners:")
    assert "watched" in table and "250" in table


def test_collector_does_not_outlive_a_killed_snakemake(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    run = start_snakemake(workdir)
    try:
        collector = wait_for(lambda: running_collector(workdir), 60, "the collector to start")
        wait_for(lambda: _learner_process("watched"), 60, "the learner job")
        os.kill(run.pid, signal.SIGKILL)  # snakemake only; its jobs and collector live on
        run.wait(timeout=10)
        wait_for(lambda: not psutil.pid_exists(collector["pid"]), 10, "the collector to exit")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        job = _learner_process("watched")
        if job is not None:
            job.kill()
