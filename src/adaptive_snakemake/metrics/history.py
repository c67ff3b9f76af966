"""The metrics history as a pandas DataFrame."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from adaptive_snakemake import layout
from adaptive_snakemake.metrics.record import FIELDS, RecordError, parse_record

COLUMNS = list(FIELDS)


def iter_records(path: str | os.PathLike) -> Iterator[dict]:
    """Valid records among the lines of `path`; other lines (job output, a torn last line)
    are skipped."""
    with open(path, "rb") as f:
        for line in f:
            record = _record_in(line)
            if record is not None:
                yield record


def last_record(path: str | os.PathLike, tail_bytes: int = 1 << 16) -> dict | None:
    """The last valid record in `path`, reading only its end."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - tail_bytes))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines):
        record = _record_in(line)
        if record is not None:
            return record
    return None


def _record_in(line: bytes) -> dict | None:
    """The valid record on one log line; None for any other line."""
    if line.startswith(b"{"):
        with contextlib.suppress(RecordError):
            return parse_record(line, max_bytes=len(line))
    return None


def learner_log_files(workdir: str | os.PathLike) -> list[Path]:
    return sorted(layout.learner_logs_dir(workdir).glob("**/*.log"))


def load_metrics(workdir: str | os.PathLike = ".", source: str = "auto") -> pd.DataFrame:
    """Every metrics record of the workflow in `workdir`, one row each, oldest first.

    source: "collector" reads logs/metrics.jsonl (what the collector received);
    "logs" reads the JSON lines in the job logs logs/learners/**/*.log (written
    even without a collector); "auto" uses the first if it exists and is not empty.
    Columns: the record fields (see `record.FIELDS`) plus `time` (UTC datetime of `t`).
    """
    if source not in ("auto", "collector", "logs"):
        raise ValueError(f"source must be auto, collector or logs, got {source!r}")
    metrics = layout.metrics_file(workdir)
    use_collector = source == "collector" or (
        source == "auto" and metrics.exists() and metrics.stat().st_size > 0
    )
    if use_collector:
        records = list(iter_records(metrics)) if metrics.exists() else []
    else:
        records = [r for log in learner_log_files(workdir) for r in iter_records(log)]
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    if not use_collector:
        frame = frame.sort_values("t", kind="stable", ignore_index=True)
    frame["time"] = pd.to_datetime(frame["t"], unit="s", utc=True)
    return frame
