"""Fenced fixes for snakemake-executor-plugin-slurm; delete each once upstream is fixed.

Apply to the plugin versions in ``AFFECTED`` (pinned in pyproject.toml, so that a newer
plugin is only used once these fixes have been re-checked against it). Outside that range,
or when what they patch is not there, they do nothing. ``fix_plugin`` installs them all; the
Snakefile calls it in the main snakemake process.

Upstream bug report 1 (snakemake-executor-plugin-slurm):

    Title: Jobs cancelled with scancel are never detected: sacct reports "CANCELLED by <uid>"

    When a job is cancelled outside of Snakemake (`scancel <jobid>`, by an admin or a
    cleanup script), `sacct -X --parsable2 --noheader --format=JobIdRaw,State` reports
    its state as `CANCELLED by 0` (the uid of whoever cancelled it). `check_active_jobs`
    compares the state with the fixed set of failed states ("CANCELLED", "FAILED", ...),
    so the job is never recognised as finished: Snakemake keeps polling it as running
    and never resubmits it, even with --retries. Reproduce: submit any rule with
    `--executor slurm --retries 1`, scancel its job, watch Snakemake wait forever.
    Expected: the job is reported as failed (and retried). Suggested fix: compare only
    the first word of the state (`state.split()[0]`), as `sacct` documents that
    "CANCELLED" may be followed by "by <uid>". Seen with plugin 2.8.0, Slurm 22.05.

Upstream bug report 2:

    Title: Snakemake sits up to init_seconds_before_status_checks after the last job; an
    accounting query (sacctmgr) per submission; `scontrol show config` every status round

    Measured with plugin 2.8.0, snakemake 9.27, interface 9.4.0, Slurm 22.05, 2 short jobs:
    1. After the last job is seen finished, the status interval is reset to
       init_seconds_before_status_checks (default 40) and the status thread sleeps it out;
       `RemoteExecutor.shutdown` joins that thread, so Snakemake exits ~37 s after the
       last job with nothing left to do. Expected: shutdown ends the sleep (e.g. sleep in
       short steps while `self.wait`, or an asyncio.Event set by shutdown).
    2. While nothing finishes, the interval grows by 10 s per round up to 180 s, so the end
       of one long job is seen up to 3 minutes late. Expected: a cap that is a setting.
    3. With `slurm_account` set (as sites require), `get_account_arg` calls
       `validate_account` for every job: one `sacctmgr -n -s list user` per submission,
       10,000 accounting-database queries for 10,000 jobs. Expected: validate each
       account once per run (the result cannot change within a run).
    4. `check_active_jobs` runs `scontrol show config` (get_min_job_age) and `which sacct`
       (is_query_tool_available) in every status round, though neither changes during a
       run and MinJobAge only matters for the squeue status command. Expected: once per
       run.
    5. Importing the plugin runs `scontrol show config` and `which sacct`/`which squeue`
       (ExecutorSettings computes the status_command help text at class definition), in
       every snakemake process: the main one, and the two inside every job (the one sbatch
       runs and the one it starts with srun): 2 slurmctld queries per job for a help
       text nobody reads. Expected: compute it lazily. (Not fixed here: it happens
       before the Snakefile is read.)
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version

from adaptive_snakemake.slurm.job_ends import a_job_has_ended, trusted_states

PLUGIN = "snakemake-executor-plugin-slurm"
# Versions known to have the bugs (checked up to 2.8.0); keep in step with pyproject.toml.
AFFECTED = ((1, 9), (2, 8, 0))
# Longest pause between two status rounds (the plugin grows it by 10 s per idle round up to
# 180 s), unless the initial interval is longer: the end of a long job is seen within it.
# One round is one sacct for all jobs of the run.
MAX_STATUS_INTERVAL_S = 10
# How often the status thread's sleep looks whether snakemake is shutting down (and
# whether a job has ended: slurm/job_ends.py).
SHUTDOWN_CHECK_S = 0.1


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def plugin_is_affected(installed: str) -> bool:
    low, high = AFFECTED
    return low <= _version_tuple(installed) <= high


def _affected_plugin():
    """The loaded plugin module if its version is in AFFECTED, else None."""
    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    if plugin is None:
        return None
    try:
        return plugin if plugin_is_affected(version(PLUGIN)) else None
    except PackageNotFoundError:
        return None


def fix_plugin() -> list[str]:
    """Install every fix below that applies; the names of those installed (none outside
    AFFECTED, none when installed already). Call in the main snakemake process."""
    return [fix.__name__ for fix in FIXES if fix()]


def fix_plugin_status_parsing() -> bool:
    """Make the plugin notice jobs cancelled with scancel; True if the fix was installed.

    Reduces each sacct state to its first word (bug report 1).
    """
    plugin = _affected_plugin()
    original = getattr(plugin, "query_job_status", None)
    if original is None or getattr(original, "first_word_states", False):
        return False

    async def query_job_status(command, logger):
        states, duration = await original(command, logger)
        if states:
            states = {
                job: state.split(maxsplit=1)[0] if state else state for job, state in states.items()
            }
        if states is not None:
            # Not a fix: ours (job_ends.py), jobs whose script exited 0 are seen at once.
            states = trusted_states(states)
        return states, duration

    query_job_status.first_word_states = True
    plugin.query_job_status = query_job_status
    return True


def _once_per_run(function, lock: threading.Lock):
    """`function(*args)` computed once per distinct arguments (submissions run in threads)."""
    results: dict = {}

    def once(*args):
        key = tuple(arg for arg in args if isinstance(arg, str | int))
        with lock:
            if key not in results:
                results[key] = function(*args)
            return results[key]

    once.once_per_run = True
    return once


def fix_plugin_queries() -> bool:
    """One `sacctmgr` per account per run instead of one per submission; `scontrol show
    config` and `which sacct` once per run instead of every status round (bug report 2,
    points 3 and 4). Errors are not cached: an invalid account fails every submission."""
    plugin = _affected_plugin()
    names = ("validate_account", "get_min_job_age", "is_query_tool_available")
    originals = [getattr(plugin, name, None) for name in names]
    if None in originals or getattr(originals[0], "once_per_run", False):
        return False
    lock = threading.Lock()
    for name, original in zip(names, originals, strict=True):
        setattr(plugin, name, _once_per_run(original, lock))
    return True


def fix_plugin_polling() -> bool:
    """Snakemake exits as soon as its last job is seen finished, not after the status
    thread's sleep; and the status interval stops growing at MAX_STATUS_INTERVAL_S (or at
    the initial interval, if that is longer) (bug report 2, points 1 and 2). The sleep also
    ends when a learner job marks its end (job_ends.py; not a bug fix: a feature of ours
    that lives in the same sleep)."""
    plugin = _affected_plugin()
    executor = getattr(plugin, "Executor", None)
    interval = getattr(executor, "next_seconds_between_status_checks", None)
    if not isinstance(interval, property) or interval.fset is None:
        return False
    if getattr(executor.sleep, "ends_on_shutdown", False):
        return False
    original_sleep = executor.sleep

    async def sleep(self):
        if not hasattr(self, "wait"):  # not the RemoteExecutor this was written for
            await original_sleep(self)
            return
        started = time.monotonic()
        deadline = started + self.next_seconds_between_status_checks
        while self.wait and (left := deadline - time.monotonic()) > 0:
            if a_job_has_ended(self, time.monotonic() - started):
                return  # the next round now, not at the end of the interval
            await asyncio.sleep(min(left, SHUTDOWN_CHECK_S))

    def capped(self, seconds):
        initial = getattr(self.workflow.executor_settings, "init_seconds_before_status_checks", 0)
        interval.fset(self, min(seconds, max(MAX_STATUS_INTERVAL_S, initial or 0)))

    sleep.ends_on_shutdown = True
    executor.sleep = sleep
    executor.next_seconds_between_status_checks = property(interval.fget, capped)
    return True


FIXES = (fix_plugin_status_parsing, fix_plugin_queries, fix_plugin_polling)
