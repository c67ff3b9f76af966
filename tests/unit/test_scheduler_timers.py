"""Snakemake's exit does not wait for its scheduler's re-evaluation timers."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from adaptive_snakemake.scheduler_timers import cancel_rescheduling_timers


def test_the_schedulers_pending_wake_ups_are_cancelled_and_nothing_else():
    woken = threading.Semaphore(0)
    # Snakemake's own method starts the timer (a stand-in for the scheduler it belongs to).
    JobScheduler._schedule_reevalutation(SimpleNamespace(_open_jobs=woken), 60)
    ours = threading.Timer(60, lambda: None)
    ours.start()
    try:
        scheduled = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        assert len(scheduled) == 2
        assert cancel_rescheduling_timers() == 1
        for timer in scheduled:
            if timer is not ours:
                timer.join(5)  # a cancelled timer ends at once, without calling its function
                assert not timer.is_alive()
        assert not woken.acquire(blocking=False)
        assert ours.is_alive()
    finally:
        ours.cancel()
