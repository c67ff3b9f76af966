"""Snakemake exits up to a second sooner: its scheduler's pending re-evaluation timers are
cancelled once the run is over (called from the onsuccess and onerror handlers).

With a submission limit (`--max-jobs-per-timespan`, default 100/1s, always on outside
dry runs) every scheduling round starts a `threading.Timer` of the limit's timespan that
only wakes the scheduler again. Those threads are not daemons, so the interpreter waits
for the last one before snakemake can exit: on average half a second at the end of every
run (snakemake 9.27, measured with py-spy in `threading._shutdown`). The timespan cannot
be made shorter than 1 s: "100ms" parses as 100 minutes (its pattern tries `m` before
`ms`). Once onsuccess or onerror runs the scheduler has returned, so nothing waits for
those wake-ups.
"""

from __future__ import annotations

import threading


def _is_rescheduling_timer(thread: threading.Thread) -> bool:
    function = getattr(thread, "function", None)
    name = getattr(function, "__qualname__", "")
    return isinstance(thread, threading.Timer) and name.startswith(
        "JobScheduler._schedule_reevalutation"  # (sic: snakemake's spelling)
    )


def cancel_rescheduling_timers() -> int:
    """Cancel the job scheduler's pending wake-ups; how many there were."""
    timers = [t for t in threading.enumerate() if _is_rescheduling_timer(t)]
    for timer in timers:
        timer.cancel()
    return len(timers)
