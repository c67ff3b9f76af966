"""Snakemake sees a learner job end within about a second, not at its next status round.

The slurm plugin learns that a job ended from its status rounds (one sacct for all jobs),
5-10 s apart (profiles/slurm): on average 5 s lost per job end, and at the end of a run,
between the last learner's goal and the summary. A learner job's batch script
(direct_jobs.py) ends with an EXIT trap that creates ``state/.job-ends/<job id>``. The
plugin's status thread sleeps in short steps between rounds (compat.py); it looks at that
directory in each step, and when a job it still counts as running has ended, it starts the
next round at once. The marker is removed when seen. The marker holds the script's exit
status: sacct may still show the job running for a second or more after its end (slurmctld
tells slurmdbd a little later), so a job whose script exited 0 counts as COMPLETED at once
(``trusted_states``; its outputs are checked as always). For any other status the rounds
come every ``RECHECK_S`` for at most ``GRACE_S``, until sacct shows how the job ended.

Nothing depends on the markers: a job killed with its batch shell (scancel, node failure)
leaves none and is seen at the next round as before. A file system that shows new files
late (NFS attribute caching on the login node) only delays the wake-up to that round.
"""

from __future__ import annotations

import os
import time

from adaptive_snakemake import layout

# A round at most this often while a job that said it ended is still shown running.
RECHECK_S = 1.0
# How long after its marker a job may still be shown running before the rounds go back to
# their interval.
GRACE_S = 6.0


# Jobs whose marker says their script exited 0, while sacct may still show them running:
# job id -> when the marker was seen (one status thread per snakemake).
_succeeded: dict[str, float] = {}
# States in which sacct may still show a job whose script has exited.
_NOT_YET_RECORDED = {None, "PENDING", "RUNNING", "CONFIGURING", "COMPLETING"}


def end_marker_lines() -> list[str]:
    """Batch-script lines: on exit, whatever the exit code, mark this job as ended, with its
    exit status."""
    marker = f'{layout.JOB_ENDS_DIR}/"$SLURM_JOB_ID"'
    return [f"trap 'echo $? > {marker} 2>/dev/null || true' EXIT"]


def _take_markers(directory: str) -> dict[str, int | None]:
    """The job ids marked as ended, with their exit status (None if the marker says none);
    their markers are removed."""
    try:
        names = os.listdir(directory)
    except OSError:  # not there yet: no job has ended
        return {}
    markers = {}
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path) as marker:
                markers[name] = int(marker.read())
        except (OSError, ValueError):  # (a marker caught before its line was written)
            markers[name] = None
        try:
            os.unlink(path)
        except OSError:
            pass
    return markers


def a_job_has_ended(executor, slept: float) -> bool:
    """True if the status thread should start its next round now: a job it counts as
    running has marked its end (or did so less than GRACE_S ago and the last round still
    showed it running), and the thread has slept RECHECK_S at least."""
    ended = executor.__dict__.setdefault("_adaptive_snakemake_job_ends", {})
    markers = _take_markers(layout.JOB_ENDS_DIR)
    if not markers and not ended:
        return False  # (the usual case, checked every 0.1 s: no set of all running jobs)
    running = {str(job.external_jobid) for job in list(executor.active_jobs)}
    now = time.monotonic()
    fresh_success = False
    for job, status in markers.items():
        if job in running:
            ended.setdefault(job, now)
            if status == 0:
                _succeeded[job] = now
                fresh_success = True
    for job, seen in list(ended.items()):
        if job not in running or now - seen > GRACE_S:
            del ended[job]
    for job in list(_succeeded):
        if job not in ended:
            del _succeeded[job]
    # A job that has just exited 0 is seen in the next round (trusted_states), at once;
    # otherwise rounds come RECHECK_S apart while sacct catches up.
    return bool(ended) and (fresh_success or slept >= RECHECK_S)


def trusted_states(states: dict[str, str | None]) -> dict[str, str | None]:
    """The status round's states, with COMPLETED for the jobs whose script exited 0 that
    sacct does not show ended yet."""
    for job in _succeeded:
        if states.get(job) in _NOT_YET_RECORDED:
            states[job] = "COMPLETED"
    return states
