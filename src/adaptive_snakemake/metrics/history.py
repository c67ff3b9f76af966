"""The metrics history as a pandas DataFrame, read within bounds (filters, newest rows)."""

import contextlib
import datetime as dt
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from adaptive_snakemake import layout
from adaptive_snakemake.metrics.record import FIELDS, RecordError, parse_record
from adaptive_snakemake.metrics.store import metrics_files

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


DEFAULT_MAX_ROWS = 100_000
# Records are stored in order of arrival, stamped by their job's clock: a rotated file whose
# last record is this much older than `since` holds no record at or after `since`.
CLOCK_SKEW_S = 600.0


def load_metrics(
    workdir: str | os.PathLike = ".",
    source: str = "auto",
    *,
    names=None,
    sweep=None,
    since=None,
    until=None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
) -> pd.DataFrame:
    """Metrics records of the workflow in `workdir`, one row each, oldest first.

    source: "collector" reads logs/metrics.jsonl and its rotated files metrics.jsonl.1,
    .2, ... (what the collector received); "logs" reads the JSON lines in the job logs
    logs/learners/**/*.log (written even without a collector); "auto" uses the first if
    logs/metrics.jsonl exists and is not empty.

    Filters, so that a long history never has to fit in memory:
    names: a learner name or a list of them; sweep: a sweep name or a list (its learners);
    since / until: keep records with since <= t <= until; each a unix time in seconds, a
    datetime or pandas Timestamp or string (naive means UTC), or a timedelta meaning that
    long before now (since=pd.Timedelta("1h"): the last hour);
    max_rows: at most this many rows, the newest ones (default 100,000; None: no limit).
    Files are read newest first and reading stops once `max_rows` rows are found, so
    memory is bounded by `max_rows`; when rows were left out, a warning says so and
    `frame.attrs["truncated"]` is True.

    Columns: the record fields (see `record.FIELDS`) plus `time` (UTC datetime of `t`).
    """
    if source not in ("auto", "collector", "logs"):
        raise ValueError(f"source must be auto, collector or logs, got {source!r}")
    if max_rows is not None and (isinstance(max_rows, bool) or max_rows < 0):
        raise ValueError(f"max_rows must be a number >= 0 or None, got {max_rows!r}")
    wanted = _Filter(names, sweep, _unix_time(since, "since"), _unix_time(until, "until"))
    metrics = layout.metrics_file(workdir)
    use_collector = source == "collector" or (
        source == "auto" and metrics.exists() and metrics.stat().st_size > 0
    )
    if use_collector:
        records, truncated = _tail_of_files(reversed(metrics_files(metrics)), wanted, max_rows)
    else:
        records, truncated = _tail_of_logs(wanted.log_files(workdir), wanted, max_rows)
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["t"], unit="s", utc=True)
    frame.attrs["truncated"] = truncated
    if truncated:
        warnings.warn(
            f"load_metrics: only the newest {max_rows:,} matching records; pass "
            "max_rows=None, or names / sweep / since / until, for others",
            stacklevel=3,
        )
    return frame


class _Filter:
    """Which records load_metrics keeps; cheap byte tests first, then the parsed record."""

    def __init__(self, names, sweep, since: float | None, until: float | None):
        self.names = _as_set(names, "names")
        self.sweeps = _as_set(sweep, "sweep")
        self.since = since
        self.until = until
        # How a wanted name can appear in a line as our reporter encodes it (ASCII-escaped
        # or UTF-8): a line containing none of these cannot be a wanted record.
        texts = list(self.names or ()) + list(self.sweeps or ())
        self.needles = None
        if texts:
            self.needles = {
                json.dumps(text, ensure_ascii=escaped)[1:-1].encode()
                for text in texts
                for escaped in (True, False)
            }

    def line_may_match(self, line: bytes) -> bool:
        return self.needles is None or any(needle in line for needle in self.needles)

    def __call__(self, record: dict) -> bool:
        name = record["name"]
        if self.names is not None or self.sweeps is not None:
            in_names = self.names is not None and name in self.names
            in_sweeps = self.sweeps is not None and name.split("/", 1)[0] in self.sweeps
            if not (in_names or in_sweeps):
                return False
        t = record["t"]
        return (self.since is None or t >= self.since) and (self.until is None or t <= self.until)

    def log_files(self, workdir) -> list[Path]:
        """The job logs that can hold wanted records (all of them without name filters)."""
        if self.names is None and self.sweeps is None:
            return learner_log_files(workdir)
        logs = layout.learner_logs_dir(workdir)
        files = {layout.learner_log(name, workdir) for name in self.names or ()}
        for sweep in self.sweeps or ():
            files.add(logs / f"{sweep}.log")
            files.update((logs / sweep).glob("**/*.log"))
        return sorted(path for path in files if path.is_file())


def _as_set(value, what: str) -> frozenset | None:
    if value is None:
        return None
    values = frozenset([value] if isinstance(value, str) else value)
    if not all(isinstance(v, str) for v in values):
        raise TypeError(f"{what} must be a string or a list of strings, got {value!r}")
    return values


def _unix_time(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{what}: expected a time, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.timedelta | pd.Timedelta):
        return time.time() - pd.Timedelta(value).total_seconds()
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


def _matching(path: Path, wanted: _Filter) -> Iterator[dict]:
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:  # rotated away since it was listed
        return
    with f:
        for line in f:
            if wanted.line_may_match(line):
                record = _record_in(line)
                if record is not None and wanted(record):
                    yield record


def _tail_of_files(paths, wanted: _Filter, max_rows: int | None) -> tuple[list[dict], bool]:
    """The last `max_rows` wanted records of `paths` (given newest first), oldest first,
    and whether older ones may have been left out."""
    parts = []
    found = 0
    truncated = False
    for path in paths:
        if max_rows is not None and found >= max_rows:
            truncated = True  # older files are not read
            break
        if wanted.since is not None:
            last = last_record(path)
            if last is not None and last["t"] < wanted.since - CLOCK_SKEW_S:
                break  # this file and the older ones hold only records before `since`
        tail = deque(maxlen=None if max_rows is None else max_rows - found)
        count = 0
        for record in _matching(path, wanted):
            tail.append(record)
            count += 1
        truncated = truncated or count > len(tail)
        parts.append(tail)
        found += len(tail)
    return [record for part in reversed(parts) for record in part], truncated


def _tail_of_logs(paths, wanted: _Filter, max_rows: int | None) -> tuple[list[dict], bool]:
    """The last `max_rows` wanted records (by time) of the job logs `paths`, oldest first."""
    kept: list[dict] = []
    truncated = False
    for path in paths:
        kept.extend(_matching(path, wanted))
        if max_rows is not None and len(kept) > 2 * max_rows + 10_000:
            kept.sort(key=_time_of)
            del kept[: len(kept) - max_rows]
            truncated = True
    kept.sort(key=_time_of)  # stable: records of one log keep their order
    if max_rows is not None and len(kept) > max_rows:
        del kept[: len(kept) - max_rows]
        truncated = True
    return kept, truncated


def _time_of(record: dict) -> float:
    return record["t"]
