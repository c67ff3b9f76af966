"""A learner job's batch script marks its end with its exit status; snakemake's status
thread then starts a round at once, and a job that exited 0 counts as COMPLETED although
sacct may still show it running."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from adaptive_snakemake import layout
from adaptive_snakemake.slurm import job_ends
from adaptive_snakemake.slurm.job_ends import a_job_has_ended, end_marker_lines, trusted_states


def _run_batch_script(workdir, job_id: str, exit_status: int) -> None:
    """The trap exactly as the batch script has it, in a script that ends with `status`."""
    (workdir / layout.JOB_ENDS_DIR).mkdir(parents=True, exist_ok=True)
    script = "\n".join(["set -e", *end_marker_lines(), f"(exit {exit_status})"])
    done = subprocess.run(
        ["bash", "-c", script], cwd=workdir, env={"SLURM_JOB_ID": job_id, "PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == exit_status


@pytest.fixture
def executor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(job_ends, "_succeeded", {})
    jobs = [SimpleNamespace(external_jobid=job) for job in ("101", "102", "103")]
    return SimpleNamespace(active_jobs=jobs)  # what the status thread reads of the plugin's


def test_a_job_that_exited_0_is_seen_completed_in_the_next_round(tmp_path, executor):
    _run_batch_script(tmp_path, "101", 0)
    assert (tmp_path / layout.JOB_ENDS_DIR / "101").read_text().strip() == "0"
    assert a_job_has_ended(executor, slept=0.0)  # at once, not RECHECK_S after the last round
    assert not list((tmp_path / layout.JOB_ENDS_DIR).iterdir())  # the marker is taken
    # sacct may not have the end yet: the marker's word counts, for that job only
    states = {"101": "RUNNING", "102": "RUNNING"}
    assert trusted_states(states) == {"101": "COMPLETED", "102": "RUNNING"}
    assert trusted_states({"102": "RUNNING"}) == {"101": "COMPLETED", "102": "RUNNING"}
    # sacct's own final word is never overridden
    assert trusted_states({"101": "FAILED"}) == {"101": "FAILED"}
    executor.active_jobs = executor.active_jobs[1:]  # the plugin saw it finish
    assert not a_job_has_ended(executor, slept=5.0)
    assert trusted_states({"102": "RUNNING"}) == {"102": "RUNNING"}


def test_a_failed_job_waits_for_sacct_to_say_how_it_ended(tmp_path, executor):
    _run_batch_script(tmp_path, "102", 3)
    assert (tmp_path / layout.JOB_ENDS_DIR / "102").read_text().strip() == "3"
    assert not a_job_has_ended(executor, slept=0.2)  # rounds stay RECHECK_S apart
    assert a_job_has_ended(executor, slept=job_ends.RECHECK_S)
    assert trusted_states({"102": "RUNNING"}) == {"102": "RUNNING"}


def test_a_marker_without_a_status_still_wakes_the_thread(tmp_path, executor):
    directory = tmp_path / layout.JOB_ENDS_DIR
    directory.mkdir(parents=True)
    (directory / "103").touch()  # caught between its creation and its line
    assert a_job_has_ended(executor, slept=job_ends.RECHECK_S)
    assert trusted_states({"103": "RUNNING"}) == {"103": "RUNNING"}
