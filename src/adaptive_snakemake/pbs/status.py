"""cluster-generic status command: print running, success or failed for one job id.

The plugin runs ``<status-cmd> '<jobid>'`` once per active job per round and insists on
exactly one of those three words; a non-zero exit stops the whole workflow, and there is
no timeout. So this command never fails and never waits long: it reads the sidecar's
cache (no qstat at all). Only when no sidecar is alive does it run one qstat for its own
job, and store what it learned in the same cache.

A job id missing from a live sidecar's cache was submitted after its last round (or by an
earlier snakemake): it is added to the registry, so the next round polls it; until then it
is running.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from adaptive_snakemake.pbs.config import (
    SidecarVars,
    env_float,
    pid_alive,
    resolve_flavour,
    state_dir_for,
)
from adaptive_snakemake.pbs.decide import DEFAULT_GRACE, RUNNING, JobRecord, decide
from adaptive_snakemake.pbs.files import StateDir, atomic_write_json, load_json
from adaptive_snakemake.pbs.qstat import lookup, query


def status_from_cache(cache: dict | None, job_id: str) -> str | None:
    # Exact ids only: the cache is keyed by what qsub printed, which is what we are given.
    record = ((cache or {}).get("jobs") or {}).get(job_id)
    return record.get("status") if isinstance(record, dict) else None


def sidecar_is_live(vars: SidecarVars | None, cache: dict | None, now: float) -> bool:
    if vars is None or cache is None or not pid_alive(vars.pid):
        return False
    # A sidecar that stopped writing is as good as dead (pid reuse, or wedged).
    return now - float(cache.get("updated", 0)) < max(10 * vars.interval, 300.0)


def answer(job_id: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    vars = SidecarVars.from_env()
    state = state_dir_for(vars)
    cache_path = state.cache if vars is None else Path(vars.cache)
    cache = load_json(cache_path)
    if sidecar_is_live(vars, cache, now):
        status = status_from_cache(cache, job_id)
        if status is not None:
            return status
        if not state.is_registered(job_id):
            state.ensure().register(job_id, None, None, now)
        return RUNNING
    return answer_without_sidecar(job_id, state, cache_path, cache, vars, now)


def answer_without_sidecar(
    job_id: str,
    state: StateDir,
    cache_path: Path,
    cache: dict | None,
    vars: SidecarVars | None,
    now: float,
) -> str:
    """One qstat for this job; the decision state (grace timers) is kept in the cache."""
    state.ensure()
    flavour = resolve_flavour(None, vars, state)
    grace = vars.grace if vars else env_float("GRACE", DEFAULT_GRACE)
    cache = cache or {"v": 1, "jobs": {}}
    jobs = cache.setdefault("jobs", {})
    record = (
        JobRecord.from_json(jobs[job_id])
        if job_id in jobs
        else _record_from_registry(state, job_id, now)
    )
    if record.final:
        return record.status
    result = query(
        flavour, [job_id], state, caller="status", timeout=env_float("QSTAT_TIMEOUT", 60)
    )
    if not result.ok:
        print(f"adaptive-snakemake pbs status: qstat failed: {result.error}", file=sys.stderr)
        return RUNNING
    markers = state.read_markers({record.token} if record.token else set())
    record = decide(
        record,
        lookup(result.jobs, job_id),
        markers.get(record.token) if record.token else None,
        now,
        grace,
        flavour,
    )
    jobs[job_id] = record.to_json()
    cache["status_updated"] = now  # not "updated": that is the sidecar's heartbeat
    atomic_write_json(cache_path, cache)
    return record.status


def _record_from_registry(state: StateDir, job_id: str, now: float) -> JobRecord:
    entries = [e for e in state.read_registry() if e.job_id == job_id]
    if not entries:
        state.register(job_id, None, None, now)
        return JobRecord(job_id, submitted=now)
    first = entries[0]
    token = next((e.token for e in entries if e.token), None)
    return JobRecord(job_id, token=token, name=first.name, submitted=first.submitted)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m adaptive_snakemake.pbs.status JOBID", file=sys.stderr)
        return 2
    try:
        status = answer(argv[0].strip())
    except Exception as e:  # never stop the workflow over a status check: retry next round
        print(f"adaptive-snakemake pbs status {argv[0]}: {type(e).__name__}: {e}", file=sys.stderr)
        status = RUNNING
    print(status)
    return 0


if __name__ == "__main__":
    # Ctrl-C reaches every process in snakemake's foreground group; see proc.py.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main())
