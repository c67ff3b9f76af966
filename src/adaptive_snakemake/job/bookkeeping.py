"""A learner's bookkeeping beside its checkpoint: attempts, time, timeouts, code failures.

Light on purpose (no adaptive): the workflow reads it when it sizes a retry's walltime.

- state/<name>.json: attempts, elapsed (s), timeouts, fingerprint of the definition;
  it belongs to the checkpoint it describes (see runner._inherited).
- state/<name>.failed.json: the last code failure (the learner's function raised) of this
  snakemake run: a retry in the same run refuses to start beyond `retries_on_error`,
  a new run (after the user fixed the function) tries again.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_json, read_json_or_none

log = logging.getLogger(__name__)

# Set by the workflow when a snakemake run starts (monitor.smk); reaches local and cluster
# jobs through the environment. Tells retries of this run from later runs.
RUN_ID_ENV = "ADAPTIVE_SNAKEMAKE_RUN_ID"
# SLURM warns 60-90 s before the time limit (--signal=TERM@60, checked every 30 s); PBS
# signals at the limit; the learner process starts seconds after its job. A stop this close
# to the walltime is a timeout (for jobs shorter than this margin, every stop is).
WALLTIME_MARGIN_S = 150


def read_meta(meta_path: Path) -> dict | None:
    """The checkpoint's bookkeeping; None (with a warning naming the file) if unreadable."""
    try:
        raw = meta_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("cannot read %s (%s); treating it as missing", meta_path, error)
        return None
    try:
        meta = json.loads(raw)  # bytes: not UTF-8 is a ValueError here too
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except ValueError as error:
        log.warning("%s is not valid bookkeeping (%s); treating it as missing", meta_path, error)
        return None
    return meta


def recorded_timeouts(meta_path: str | os.PathLike) -> int:
    """How often the learner's jobs ran out of walltime (0 if unknown)."""
    meta = read_json_or_none(meta_path)
    timeouts = meta.get("timeouts", 0) if isinstance(meta, dict) else 0
    return timeouts if isinstance(timeouts, int) and timeouts >= 0 else 0


def is_walltime_stop(elapsed_s: float, runtime_minutes: float | None) -> bool:
    """Whether a stop signal after `elapsed_s` of a job with this walltime is its timeout."""
    if not runtime_minutes:
        return False
    return elapsed_s >= runtime_minutes * 60 - WALLTIME_MARGIN_S


def current_run_id() -> str | None:
    return os.environ.get(RUN_ID_ENV) or None


def code_failures_this_run(failure_path: Path) -> tuple[int, dict | None]:
    """(code failures of this learner in this snakemake run, the last failure's record)."""
    record = read_json_or_none(failure_path)
    if not isinstance(record, dict):
        return 0, None
    run = current_run_id()
    if run is None or record.get("run") != run:
        return 0, record
    failures = record.get("code_failures", 0)
    return (failures if isinstance(failures, int) else 0), record


def record_code_failure(failure_path: Path, attempt: int, error: BaseException) -> int:
    """Write the failure record; returns the code failures of this run, this one included."""
    failures, _ = code_failures_this_run(failure_path)
    text = "".join(traceback.format_exception(error))
    record = {
        "run": current_run_id(),
        "code_failures": failures + 1,
        "attempt": attempt,
        "error": f"{type(error).__name__}: {error}"[:500],
        "traceback": text[-4000:],
        "at": time.time(),
    }
    atomic_write_json(failure_path, record)
    return failures + 1


def clear_code_failure(failure_path: Path) -> None:
    failure_path.unlink(missing_ok=True)
