"""Which process is which: is a process still alive, and which batch job are we in."""

from __future__ import annotations

import os

import psutil


def find_process(pid: int | None) -> psutil.Process | None:
    """A handle on the live process ``pid``; None if there is none.

    Keep the handle and ask `is_alive(handle)` later: it remembers the process's start time,
    so a new process that reuses the pid is not taken for it.
    """
    if pid is None:  # psutil.Process(None) would be this process
        return None
    try:
        process = psutil.Process(pid)
    except (psutil.Error, ValueError, TypeError):
        return None
    return process if is_alive(process) else None


def is_alive(process: psutil.Process | int | None) -> bool:
    """True while ``process`` (a handle or a pid) runs: not ended and not a zombie.

    A process we may not inspect (another user's) counts as alive.
    """
    if process is None or isinstance(process, bool):
        return False
    try:
        if not isinstance(process, psutil.Process):
            process = psutil.Process(process)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True
    except (psutil.NoSuchProcess, ValueError, TypeError):  # ValueError: a negative pid
        return False


def batch_job_id() -> str | None:
    """The SLURM or PBS id of the job this process runs in; None outside a batch job."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID") or None
