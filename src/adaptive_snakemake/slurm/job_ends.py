"""Snakemake sees a learner job end within about a second, not at its next status round.

The slurm plugin learns that a job ended from its status rounds (one sacct for all jobs),
5-10 s apart (profiles/slurm): on average 5 s lost per job end, and at the end of a run,
between the last learner's goal and the summary. A learner job's batch script
(direct_jobs.py) ends with an EXIT trap that creates ``state/.job-ends/<job id>``. The
plugin's status thread sleeps in short steps between rounds (compat.py); it looks at that
directory in each step, and when a job it still counts as running has ended, it starts the
next round at once. The marker is removed when seen. sacct may still show the job running
for a moment (slurmdbd records the end a little later): the rounds then come every
``RECHECK_S`` for at most ``GRACE_S``.

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


def end_marker_lines() -> list[str]:
    """Batch-script lines: on exit, whatever the exit code, mark this job as ended."""
    marker = f'{layout.JOB_ENDS_DIR}/"$SLURM_JOB_ID"'
    return [f"trap 'touch {marker} 2>/dev/null || true' EXIT"]


def _take_markers(directory: str) -> list[str]:
    """The job ids marked as ended; their markers are removed."""
    try:
        names = os.listdir(directory)
    except OSError:  # not there yet: no job has ended
        return []
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
    return names


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
    for job in markers:
        if job in running:
            ended.setdefault(job, now)
    for job, seen in list(ended.items()):
        if job not in running or now - seen > GRACE_S:
            del ended[job]
    return bool(ended) and slept >= RECHECK_S
