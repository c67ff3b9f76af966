"""`adaptive-snakemake status`: one table of every learner of the workflow.

Sources, all read from files (the collector's socket is never queried):
.adaptive-snakemake/status.json (latest record per learner, rewritten by the
collector every second), the last JSON line of each job log when no collector is
live, results/**/result.json for finished learners, and the plan the last snakemake
run wrote (.adaptive-snakemake/plan.json: every learner name and the monitor settings),
so that learners not started yet show as pending.
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import pandas as pd

from adaptive_snakemake import layout
from adaptive_snakemake.fileio import read_json_or_none
from adaptive_snakemake.metrics.history import last_record, learner_log_files
from adaptive_snakemake.metrics.pidfile import running_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.state import STATES, state_of
from adaptive_snakemake.plan import read_plan
from adaptive_snakemake.results.result import Result

COLUMNS = [
    "name",
    "state",
    "npoints",
    "loss",
    "rate",
    "cpu",
    "rss_mb",
    "attempts",
    "host",
    "job_id",
    "elapsed",
    "last_seen",
    "error",  # a failed learner's error (its function raised), from state/<name>.failed.json
]
STATE_ORDER = {"stale": 0, "failed": 1, "running": 2, "pending": 3, "done": 4}
STATE_STYLE = {
    "stale": "bold yellow",
    "failed": "bold red",
    "running": "green",
    "pending": "dim",
    "done": "blue",
}
LIVE_STATUS_AGE_S = 10  # an older status.json means the collector stopped updating it


class StatusReader:
    """Builds the status table; keeps parsed result.json files between refreshes."""

    def __init__(self, workdir: str | os.PathLike = ".", names=None):
        self.workdir = Path(workdir)
        self.names = list(names) if names is not None else None
        self.plan = None
        self._results: dict[Path, tuple[float, Result | None]] = {}
        self.collector: dict | None = None
        self.source = "none"
        self._goals: dict[str, int | None] = {}
        self._last_results: dict = {}

    def table(self, now: float | None = None) -> pd.DataFrame:
        now = time.time() if now is None else now
        self.plan = read_plan(self.workdir)
        settings = self.plan.monitor if self.plan else MonitorSettings()
        planned = self.names if self.names is not None else self.plan.names if self.plan else ()
        latest, stale_intervals = self._latest_records(settings, now)
        results = self._read_results()
        self._last_results = results
        names = set(latest) | set(results) | set(planned)
        rows = [
            _row(name, latest.get(name), results.get(name), stale_intervals, now) for name in names
        ]
        for row in rows:
            if row["state"] == "failed":
                row["error"] = self._error_of(row["name"])
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame = frame.astype({"npoints": "Int64", "attempts": "Int64"})
        order = frame["state"].map(STATE_ORDER)
        frame = frame.assign(_order=order).sort_values(["_order", "name"], kind="stable")
        return frame.drop(columns="_order").reset_index(drop=True)

    def _latest_records(self, settings: MonitorSettings, now: float):
        """name -> (record, last_seen, interval); from the collector, else from job logs."""
        self.collector = None
        status = read_json_or_none(layout.status_file(self.workdir))
        live = running_collector(self.workdir) is not None
        latest = {}
        stale_intervals = settings.stale_intervals
        if isinstance(status, dict) and isinstance(status.get("learners"), dict):
            stale_intervals = status.get("stale_intervals", stale_intervals)
            self.collector = {**status.get("collector", {}), "updated": status.get("updated")}
            self.collector["live"] = live
            for name, entry in status["learners"].items():
                latest[name] = (entry["record"], entry["last_seen"], entry["interval"])
        fresh = isinstance(status, dict) and now - status.get("updated", 0) < LIVE_STATUS_AGE_S
        self.source = "collector" if live and fresh else "logs"
        if self.source == "logs":
            for log in learner_log_files(self.workdir):
                record = last_record(log)
                if record is None:
                    continue
                known = latest.get(record["name"])
                if known is None or record["t"] > known[0]["t"]:
                    interval = record.get("interval") or settings.log_interval
                    latest[record["name"]] = (record, record["t"], interval)
        return latest, stale_intervals

    def npoints_goal(self, sweep: str) -> int | None:
        """The sweep's npoints goal (a sweep's learners share it), from the result or the
        checkpoint bookkeeping of one of its learners; None if unknown or not an npoints goal."""
        if sweep in self._goals:
            return self._goals[sweep]
        goal = None
        for result, _ in self._last_results.values():
            if result.sweep == sweep:
                goal = result.goal
                break
        if goal is None:
            state = layout.checkpoint("", self.workdir).parent / sweep
            metas = [state.with_suffix(".json")] if state.with_suffix(".json").exists() else []
            if not metas and state.is_dir():
                found = (m for m in state.glob("**/*.json") if not m.name.endswith(".failed.json"))
                metas = [next(found, None)]
            for meta in metas:
                data = read_json_or_none(meta) if meta is not None else None
                spec = data.get("spec") if isinstance(data, dict) else None
                if isinstance(spec, dict) and isinstance(spec.get("goal"), dict):
                    goal = spec["goal"]
                    break
        if goal is None:
            return None  # not known yet: look again at the next refresh
        value = goal.get("npoints")
        self._goals[sweep] = int(value) if isinstance(value, int | float) else None
        return self._goals[sweep]

    def _error_of(self, name: str) -> str | None:
        record = read_json_or_none(layout.failure_record(layout.checkpoint(name, self.workdir)))
        return record.get("error") if isinstance(record, dict) else None

    def _read_results(self) -> dict[str, tuple[Result, float]]:
        """name -> (result, mtime of its result.json); unreadable files are skipped."""
        results = {}
        seen = set()
        for path in layout.results_dir(self.workdir).glob("**/result.json"):
            seen.add(path)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            cached = self._results.get(path)
            if cached is None or cached[0] != mtime:
                try:
                    cached = (mtime, Result.read(path))
                except (OSError, ValueError):  # being written, or not a result: skip it
                    cached = (mtime, None)
                self._results[path] = cached
            if cached[1] is not None:
                results[cached[1].name] = (cached[1], mtime)
        for path in set(self._results) - seen:
            del self._results[path]
        return results


def _row(name, latest, result, stale_intervals, now) -> dict:
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(name=name, state="pending", host=None, job_id=None, attempts=pd.NA, error=None)
    record = None
    if latest is not None:
        record, last_seen, interval = latest
        row.update(
            state=state_of(record["status"], last_seen, interval, stale_intervals, now),
            npoints=record["npoints"],
            loss=record["loss"] if record["loss"] is not None else math.nan,
            rate=record["rate"],
            cpu=record["cpu"],
            rss_mb=record["rss_mb"],
            attempts=record["attempt"],
            host=record["host"],
            job_id=record["job_id"],
            elapsed=record["elapsed"],
            last_seen=last_seen,
        )
    # A record newer than result.json means the learner runs again (e.g. a raised goal).
    if result is not None and (record is None or record["t"] <= result[1]):
        result = result[0]
        row.update(state="done", rate=math.nan, cpu=math.nan, rss_mb=math.nan)
        row.update(npoints=result.npoints, elapsed=result.elapsed, attempts=result.attempts)
        row["loss"] = result.loss if result.loss is not None else math.nan
    elif row["state"] == "done":
        row.update(rate=math.nan, cpu=math.nan, rss_mb=math.nan)
    return row


def status(workdir: str | os.PathLike = ".", names=None) -> pd.DataFrame:
    """One row per learner: name, state (pending/running/done/failed/stale), npoints, loss,
    rate (points/s), cpu (%), rss_mb, attempts, host, job_id, elapsed (s), last_seen (unix s).

    `names`: every learner of the workflow, so that those not started yet appear as
    pending (default: those the last snakemake run planned); learners seen in metrics or
    results always appear.
    """
    reader = StatusReader(workdir, names)
    now = time.time()
    frame = reader.table(now)
    sweeps = sweep_progress(frame, reader, now)
    frame = frame.assign(
        sweep=frame["name"].str.split("/").str[0],
        last_seen=pd.to_datetime(frame["last_seen"], unit="s", utc=True),
    )
    frame.attrs["sweeps"] = sweeps
    return frame


# -- progress per sweep -------------------------------------------------------------------------

PROGRESS_COLUMNS = [
    "sweep",
    "learners",
    "done",
    "running",
    "stale",
    "failed",
    "pending",
    "npoints",
    "goal_npoints",  # sum over the sweep's learners of the npoints goal (NaN: no npoints goal)
    "rate",  # points/s of its running learners together
    "eta_s",  # seconds until the sweep is done at the observed rate (NaN: unknown)
    "eta",  # the same as a timestamp (UTC)
]


def sweep_progress(frame: pd.DataFrame, reader: StatusReader, now: float) -> pd.DataFrame:
    """One row per sweep: learners per state, points against the goal, the observed rate
    and an ETA (remaining points / current rate; without an npoints goal, remaining
    learners at the rate learners finished since the run was planned)."""
    rows = []
    run_done = int((frame["state"] == "done").sum())
    sweeps = frame["name"].str.split("/").str[0]
    for sweep, part in frame.groupby(sweeps, sort=True):
        counts = part["state"].value_counts()
        row = {"sweep": sweep, "learners": len(part)}
        row.update({state: int(counts.get(state, 0)) for state in STATES})
        npoints = part["npoints"].fillna(0).astype(float)
        row["npoints"] = int(npoints.sum())
        goal = reader.npoints_goal(sweep)
        running = part[part["state"] == "running"]  # a stale learner adds nothing
        rate = float(running["rate"].fillna(0).sum())
        row["rate"] = rate
        row["goal_npoints"] = goal * len(part) if goal else math.nan
        eta = math.nan
        unfinished = part[~part["state"].isin(["done", "failed"])]
        if unfinished.empty:
            eta = 0.0 if row["failed"] == 0 else math.nan
        elif goal and rate > 0:
            remaining = (goal - npoints[unfinished.index]).clip(lower=0).sum()
            eta = float(remaining) / rate
        elif reader.plan is not None and now > reader.plan.planned_at and run_done:
            # Learners done per second since the run was planned (this sweep's, else the
            # whole run's): the sweep's remaining learners at that pace.
            done = row["done"] or run_done
            eta = (now - reader.plan.planned_at) / done * len(unfinished)
        row["eta_s"] = eta
        row["eta"] = pd.to_datetime(now + eta, unit="s", utc=True) if math.isfinite(eta) else pd.NaT
        rows.append(row)
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


# -- rendering ----------------------------------------------------------------------------------


def _fmt_number(value, fmt: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return f"{value:{fmt}}{suffix}"


def _fmt_age(last_seen, now: float) -> str:
    if last_seen is None or (isinstance(last_seen, float) and math.isnan(last_seen)):
        return ""
    age = max(0.0, now - last_seen)
    if age < 120:
        return f"{age:.0f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    if age < 2 * 86400:
        return f"{age / 3600:.0f} h ago"
    return f"{age / 86400:.0f} d ago"


def summary_line(frame: pd.DataFrame, reader: StatusReader, now: float) -> str:
    counts = frame["state"].value_counts()
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s, 0)]
    line = f"{len(frame)} learners" + (": " + ", ".join(parts) if parts else "")
    collector = reader.collector
    if collector and collector.get("live"):
        dropped = sum((collector.get("dropped") or {}).values())
        line += (
            f"   collector pid {collector.get('pid')} on {collector.get('endpoint')}: "
            f"{collector.get('stored', 0):,} records, {dropped:,} dropped"
        )
        if reader.source != "collector":
            line += " (not updating; read job logs)"
    else:
        line += "   collector not running (latest records read from job logs)"
    return line


# (header, justify); dropped right to left in DROP_ORDER when the terminal is too narrow.
TABLE_COLUMNS = (
    ("Learner", "left"),
    ("State", "left"),
    ("Points", "right"),
    ("Loss", "right"),
    ("Rate", "right"),
    ("CPU", "right"),
    ("Memory", "right"),
    ("Attempts", "right"),
    ("Host", "left"),
    ("Last heard", "right"),
)
DROP_ORDER = ("Host", "Attempts", "Memory", "CPU", "Rate", "Last heard", "Loss")
NAME_MIN_WIDTH = 24


def _cells(row, now: float) -> list[str]:
    return [
        row.name,
        row.state,
        _fmt_number(row.npoints, ",.0f"),
        _fmt_number(row.loss, ".3g"),
        _fmt_number(row.rate, ".3g", "/s"),
        _fmt_number(row.cpu, ".0f", "%"),
        _fmt_number(row.rss_mb, ",.0f", " MB"),
        _fmt_number(row.attempts, "d"),
        row.host if isinstance(row.host, str) else "",
        _fmt_age(row.last_seen, now),
    ]


BAR_ORDER = ("done", "running", "stale", "failed", "pending")
BAR_CHARS = {"done": "█", "running": "█", "stale": "█", "failed": "█", "pending": "░"}


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _progress_text(row) -> str:
    """done, ETA, the other states, points against the goal, rate: most important first, so
    that a narrow terminal cuts the least important."""
    parts = [f"{row.done:,}/{row.learners:,} done"]
    parts.append("finished" if row.done == row.learners else f"ETA {_fmt_duration(row.eta_s)}")
    parts += [
        f"{getattr(row, s):,} {s}"
        for s in ("running", "stale", "failed", "pending")
        if getattr(row, s)
    ]
    points = f"{row.npoints:,}"
    if math.isfinite(row.goal_npoints):
        points += f"/{row.goal_npoints:,.0f}"
    parts.append(f"{points} points")
    if row.rate > 0:
        parts.append(f"{row.rate:,.3g}/s")
    return "  ".join(parts)


def progress_bars(sweeps: pd.DataFrame, width: int | None = None, max_sweeps: int = 20):
    """One line per sweep: a bar of its learners by state, then counts, ETA, points against
    the goal and the rate."""
    from rich.table import Table
    from rich.text import Text

    shown = list(sweeps.head(max_sweeps).itertuples(index=False))
    texts = [_progress_text(row) for row in shown]
    name_width = min(24, max([5, *(len(row.sweep) for row in shown)]))
    room = (width or 100) - name_width - max([0, *(len(t) for t in texts)]) - 2
    bar_width = max(10, min(40, room))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=name_width, max_width=name_width, overflow="ellipsis")
    grid.add_column(no_wrap=True, min_width=bar_width, max_width=bar_width)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    for row, text in zip(shown, texts, strict=True):
        bar = Text()
        cells = 0
        for state in BAR_ORDER:
            count = getattr(row, state)
            n = round(bar_width * count / row.learners) if row.learners else 0
            n = min(n, bar_width - cells) if state != "pending" else bar_width - cells
            if count and n == 0 and cells < bar_width and state != "pending":
                n = 1  # a failed learner among thousands still shows
            bar.append(BAR_CHARS[state] * n, style=STATE_STYLE[state])
            cells += n
        grid.add_row(Text(row.sweep, "bold"), bar, text)
    if len(sweeps) > max_sweeps:
        grid.add_row("", "", Text(f"... {len(sweeps) - max_sweeps} more sweeps", "dim"))
    return grid


INTEREST = {"stale": 0, "failed": 1, "running": 2, "pending": 3, "done": 4}


def interesting_rows(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most `limit` rows, the interesting ones first: stale, failed, then running learners
    slowest first (most points still to go at their rate: lowest rate), pending, done."""
    if len(frame) <= limit:
        return frame
    order = frame["state"].map(INTEREST)
    rate = frame["rate"].fillna(math.inf)
    ranked = frame.assign(_o=order, _r=rate).sort_values(["_o", "_r", "name"], kind="stable")
    return ranked.drop(columns=["_o", "_r"]).head(limit)


def log_tail(workdir: Path, name: str, lines: int = 3, tail_bytes: int = 8192) -> list[str]:
    """The last lines of a learner's job log that are not metrics records."""
    path = layout.learner_log(name, workdir)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - tail_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    return kept[-lines:]


def render(
    frame: pd.DataFrame,
    reader: StatusReader,
    now: float,
    limit: int | None = None,
    width: int | None = None,
    bars: bool = False,
    log_lines: int = 0,
):
    """The summary line, (bars) one progress bar per sweep, and the table, as a rich
    renderable; with `limit`, the table shows the interesting rows (stale, failed, slowest
    running). Columns that do not fit in `width` are left out, least important first (the
    learner name is folded, never cut). `log_lines`: the last lines of the logs of stale and
    failed learners shown."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown = frame if limit is None else interesting_rows(frame, limit)
    rows = [_cells(row, now) for row in shown.itertuples(index=False)]
    headers = [header for header, _ in TABLE_COLUMNS]
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(headers)]
    keep = list(range(len(headers)))
    if width is not None:
        name_width = min(widths[0], max(NAME_MIN_WIDTH, width // 3))
        for header in DROP_ORDER:
            if name_width + sum(widths[k] + 2 for k in keep[1:]) <= width:
                break
            keep.remove(headers.index(header))
    table = Table(box=None, header_style="bold", pad_edge=False, expand=False)
    for k in keep:
        header, justify = TABLE_COLUMNS[k]
        if k == 0:
            table.add_column(header, justify=justify, overflow="fold", min_width=min(widths[0], 16))
        else:
            table.add_column(header, justify=justify, no_wrap=True)
    for row in rows:
        cells = [Text(row[k], style=STATE_STYLE[row[1]]) if k == 1 else row[k] for k in keep]
        table.add_row(*cells)
    parts = [Text(summary_line(frame, reader, now))]
    if bars and len(frame):
        parts += [progress_bars(sweep_progress(frame, reader, now), width), Text("")]
    parts.append(table)
    if len(shown) < len(frame):
        hidden = frame.loc[~frame.index.isin(shown.index), "state"].value_counts()
        more = ", ".join(f"{n:,} {state}" for state, n in hidden.items())
        parts.append(Text(f"... {len(frame) - len(shown):,} more ({more}; use --state)", "dim"))
    troubled = shown[shown["state"].isin(["failed", "stale"])]
    for row in troubled.head(5 if log_lines else len(troubled)).itertuples(index=False):
        style = STATE_STYLE[row.state]
        if row.state == "failed" and isinstance(row.error, str):
            parts.append(Text(f"{row.name}: {row.error}", style))
        elif log_lines:
            parts.append(Text(f"{row.name}: {row.state}", style))
        for line in log_tail(reader.workdir, row.name, log_lines) if log_lines else ():
            parts.append(Text(f"    {line[: (width or 160) - 4]}", "dim"))
    return Group(*parts)


# -- command line -------------------------------------------------------------------------------


def main_status(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="adaptive-snakemake status",
        description="Show every learner of the workflow: state, points, loss, rate, CPU, memory.",
    )
    parser.add_argument("-d", "--workdir", default=".", help="workflow directory (default: .)")
    parser.add_argument("-w", "--watch", action="store_true", help="refresh the table live")
    parser.add_argument(
        "-n", "--interval", type=float, default=2.0, help="seconds between refreshes (--watch)"
    )
    parser.add_argument(
        "-s", "--state", help="show only these states, comma-separated, e.g. running,stale"
    )
    parser.add_argument("--limit", type=int, help="show at most this many rows")
    parser.add_argument("--json", action="store_true", help="print the table as JSON records")
    parser.add_argument(
        "--bars",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one progress bar per sweep above the table (default: on)",
    )
    parser.add_argument(
        "--log-lines",
        type=int,
        default=3,
        help="last log lines shown for stale and failed learners (--watch; default 3)",
    )
    args = parser.parse_args(argv)
    states = None
    if args.state:
        states = [s.strip() for s in args.state.split(",") if s.strip()]
        unknown = sorted(set(states) - set(STATES))
        if unknown:
            parser.error(f"unknown state(s) {', '.join(unknown)}; choose from {', '.join(STATES)}")
    workdir = Path(args.workdir)
    reader = StatusReader(workdir)

    def current():
        frame = reader.table()
        if states:
            frame = frame[frame["state"].isin(states)].reset_index(drop=True)
        return frame

    if args.json:
        print(current().to_json(orient="records"))
        return 0
    from rich.console import Console

    # Piped into a file or a pager: show every column rather than rich's 80-column default.
    console = Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=160)
    if not args.watch:
        frame = current()
        bars = args.bars or (args.bars is None and len(frame) > 0)
        console.print(render(frame, reader, time.time(), args.limit, console.width, bars=bars))
        return 0
    from rich.live import Live

    def view():
        frame = current()
        sweeps = frame["name"].str.split("/").str[0].nunique()
        # The bars, the lines around the table and the log tails of up to 5 learners.
        room = console.size.height - min(sweeps, 20) - 6 - 5 * (1 + args.log_lines)
        limit = args.limit if args.limit is not None else max(5, room)
        return render(
            frame,
            reader,
            time.time(),
            limit,
            console.width,
            bars=args.bars is not False,
            log_lines=args.log_lines,
        )

    try:
        with Live(view(), console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                live.update(view(), refresh=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main_status())
