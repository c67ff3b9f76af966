"""What SLURM's accounting (sacct) says about the test cluster's jobs."""

from __future__ import annotations

import subprocess

from tests.workflow_helpers import wait_for

FIELDS = [
    "JobID",
    "State",
    "ExitCode",
    "AllocCPUS",
    "ReqMem",
    "Elapsed",
    "Timelimit",
    "Start",
    "End",
]
BUSY = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED"}


def sacct_rows(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """One sacct query: the allocation row of each job sacct knows, by job id."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", ",".join(FIELDS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]
    return {row["JobID"]: row for row in rows}


def sacct_finished(job_ids: list[str], timeout: float = 60) -> dict[str, dict[str, str]]:
    """Rows of the jobs, once sacct records every one of them as ended.

    State is reduced to its first word: sacct says "CANCELLED by <uid>".
    """

    def query():
        rows = sacct_rows(job_ids)
        if not all(job in rows for job in job_ids):
            return None
        for row in rows.values():
            row["State"] = row["State"].split()[0] if row["State"] else row["State"]
        return rows if all(rows[job]["State"] not in BUSY for job in job_ids) else None

    return wait_for(query, timeout, f"sacct to record the end of jobs {job_ids}", poll=1)
