"""A fenced fix for snakemake-executor-plugin-slurm; delete it once upstream is fixed.

Applies to the plugin versions in ``AFFECTED`` (pinned in pyproject.toml, so that a newer
plugin is only used once this fix has been re-checked against it). Outside that range
``fix_plugin_status_parsing`` does nothing.

Upstream bug report (snakemake-executor-plugin-slurm):

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
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

PLUGIN = "snakemake-executor-plugin-slurm"
# Versions known to have the bug (checked up to 2.8.0); keep in step with pyproject.toml.
AFFECTED = ((1, 9), (2, 8, 0))


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


def fix_plugin_status_parsing() -> bool:
    """Make the plugin notice jobs cancelled with scancel; True if the fix was installed.

    Reduces each sacct state to its first word. Call in the main snakemake process (the
    Snakefile does); only when the plugin is loaded and its version is in AFFECTED.
    """
    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    original = getattr(plugin, "query_job_status", None)
    if original is None or getattr(original, "first_word_states", False):
        return False
    try:
        if not plugin_is_affected(version(PLUGIN)):
            return False
    except PackageNotFoundError:
        return False

    async def query_job_status(command, logger):
        states, duration = await original(command, logger)
        if states:
            states = {
                job: state.split(maxsplit=1)[0] if state else state for job, state in states.items()
            }
        return states, duration

    query_job_status.first_word_states = True
    plugin.query_job_status = query_job_status
    return True
