"""`adaptive-snakemake cancel-orphans`: cancel the jobs a killed snakemake left behind.

After the snakemake
process on the login node died (kill -9, lost session), its learner jobs keep running.
A rerun is safe without cancelling them (a second job of a learner waits for the
learner's lock), but a waiting job holds its allocation until the first one ends. This
command cancels every queued or running job of THIS workflow directory, then waits until
they are gone; each running learner saves its checkpoint on the SIGTERM of scancel.

Which jobs are this workflow's: snakemake-executor-plugin-slurm submits every job with
`-D <workflow directory>` and `--comment rule_<rule>_wildcards_<wildcards>`; its job name
is a UUID of the (dead) run, so it cannot tell us anything. We take the user's jobs whose
working directory is this directory and whose comment starts with `rule_` or `group_`.
"""

from __future__ import annotations

import argparse
import os
import pwd
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SlurmJob",
    "find_workflow_jobs",
    "main_cancel_orphans",
    "running_snakemakes",
]

# The comment snakemake-executor-plugin-slurm gives each job (submit_string.py, run_job).
PLUGIN_COMMENT_PREFIXES = ("rule_", "group_")
# squeue states of a job that is gone for good.
FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
SQUEUE_TIMEOUT_S = 60
SCANCEL_BATCH = 500  # job ids per scancel call


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    state: str
    comment: str
    workdir: str

    @property
    def what(self) -> str:
        """rule_learner_mpi_wildcards_peak_offset~0.5 -> learner_mpi peak_offset~0.5"""
        rule, _, wildcards = self.comment.partition("_wildcards_")
        return f"{rule.removeprefix('rule_').removeprefix('group_')} {wildcards}".strip()


class SlurmCommandError(RuntimeError):
    pass


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _run(command: list[str]) -> str:
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmCommandError(f"{command[0]} failed: {error}") from None
    if proc.returncode != 0:
        raise SlurmCommandError(
            f"{' '.join(command)} exited with {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


def _same_directory(a: str, b: str | os.PathLike) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def find_workflow_jobs(workdir: str | os.PathLike, user: str | None = None) -> list[SlurmJob]:
    """The user's queued or running SLURM jobs that the slurm plugin submitted for workdir."""
    # WorkDir last: the only field that could contain the separator.
    out = _run(["squeue", "--noheader", "--user", user or _user(), "--format", "%i|%T|%k|%Z"])
    jobs = []
    for line in out.splitlines():
        fields = line.split("|", 3)
        if len(fields) != 4:
            continue
        job_id, state, comment, job_workdir = (field.strip() for field in fields)
        if (
            comment.startswith(PLUGIN_COMMENT_PREFIXES)
            and state not in FINISHED_STATES
            and _same_directory(job_workdir, workdir)
        ):
            jobs.append(SlurmJob(job_id, state, comment, job_workdir))
    return jobs


def _is_main_snakemake(cmdline: list[str]) -> bool:
    """snakemake on the login node, not the snakemake that runs a rule inside a job."""
    if "--target-jobs" in cmdline:  # every job's snakemake has it
        return False
    for i, arg in enumerate(cmdline[:3]):
        if os.path.basename(arg) == "snakemake":
            return True
        if arg == "-m" and i + 1 < len(cmdline) and cmdline[i + 1] == "snakemake":
            return True
    return False


def running_snakemakes(workdir: str | os.PathLike) -> list[int]:
    """Pids of snakemake runs on this host whose working directory is workdir."""
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid() or not _is_main_snakemake(process.info["cmdline"] or []):
            continue
        try:
            cwd = process.cwd()
        except (psutil.Error, OSError):
            continue
        if _same_directory(cwd, workdir):
            pids.append(process.pid)
    return pids


def _still_queued(job_ids: list[str]) -> list[str]:
    out = _run(["squeue", "--noheader", "--states=all", "--jobs", ",".join(job_ids), "-o", "%i|%T"])
    queued = []
    for line in out.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id in job_ids and state not in FINISHED_STATES:
            queued.append(job_id)
    return queued


def _wait_until_gone(job_ids: list[str], timeout: float, poll: float = 2.0) -> list[str]:
    deadline = time.monotonic() + timeout
    left = list(job_ids)
    while left:
        try:
            left = _still_queued(left)
        except SlurmCommandError as error:
            # squeue -j fails with "Invalid job id" once every listed job is purged.
            if "Invalid job id" not in str(error):
                raise
            return []
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    return left


def _arguments(argv):
    parser = argparse.ArgumentParser(
        prog="adaptive-snakemake cancel-orphans",
        description=(
            "Cancel every queued or running SLURM job of this workflow directory, left "
            "behind by a snakemake process that died (kill -9, lost login session), and "
            "wait until they are gone. Running learners save their checkpoint first. "
            "Then rerun: snakemake --unlock; snakemake --profile profiles/slurm"
        ),
    )
    parser.add_argument(
        "-d", "--directory", default=".", help="the workflow directory (default: .)"
    )
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="list the jobs, cancel nothing"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the cancelled jobs to end (default: 300)",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for the cancelled jobs to end"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="cancel even though a snakemake is running in this directory on this host",
    )
    return parser.parse_args(argv)


def main_cancel_orphans(argv: list[str] | None = None) -> int:
    """`adaptive-snakemake cancel-orphans`: 0 done (or nothing to do), 1 error, 2 refused."""
    args = _arguments(sys.argv[1:] if argv is None else argv)
    workdir = Path(args.directory).resolve()
    prog = "adaptive-snakemake cancel-orphans"
    if not (workdir / "workflow" / "Snakefile").exists():
        print(f"{prog}: {workdir} is not a workflow directory (no workflow/Snakefile)")
        return 1
    live = running_snakemakes(workdir)
    if live and not args.force and not args.dry_run:
        print(
            f"{prog}: snakemake is still running in {workdir} (pid {', '.join(map(str, live))}); "
            "its jobs are not orphans. Stop it with Ctrl-C (it cancels its jobs) or use --force."
        )
        return 2
    try:
        jobs = find_workflow_jobs(workdir)
    except SlurmCommandError as error:
        print(f"{prog}: {error}")
        return 1
    if not jobs:
        print(f"{prog}: no queued or running SLURM jobs of {workdir}")
        return 0
    verb = "would cancel" if args.dry_run else "cancelling"
    print(f"{prog}: {verb} {len(jobs)} job(s) of {workdir}:")
    for job in jobs:
        print(f"  {job.job_id:>10}  {job.state:<11} {job.what}")
    if args.dry_run:
        return 0
    job_ids = [job.job_id for job in jobs]
    try:
        for start in range(0, len(job_ids), SCANCEL_BATCH):
            _run(["scancel", *job_ids[start : start + SCANCEL_BATCH]])
        if args.no_wait:
            return 0
        left = _wait_until_gone(job_ids, args.timeout)
    except SlurmCommandError as error:
        print(f"{prog}: {error}")
        return 1
    if left:
        print(f"{prog}: still not ended after {args.timeout:.0f} s: {', '.join(left)}")
        return 1
    print(f"{prog}: all {len(job_ids)} job(s) ended; now: snakemake --unlock, then rerun")
    return 0
