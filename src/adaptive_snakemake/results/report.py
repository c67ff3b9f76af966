"""The pieces of `snakemake --report`: one self-contained HTML page and one picture per
sweep, and for the whole run a summary table, a timeline and convergence curves.

Everything is drawn from the files a run leaves, so a partly finished run works too:
results/<name>/result.json of finished learners, the checkpoint and its bookkeeping
(state/<name>.pickle, state/<name>.json) of unfinished ones, state/<name>.failed.json of
failed ones, and the metrics history (logs/metrics.jsonl, else the job logs).

Snakemake's HTML report embeds single files (a directory would need a zip report), so
each sweep is one HTML file with its pictures inline (base64), a sortable and searchable
table, and one page per learner (shown on a click, or at #<learner name>).
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field

from adaptive_snakemake import layout
from adaptive_snakemake.fileio import atomic_write_bytes, atomic_write_text, read_json_or_none
from adaptive_snakemake.results.result import Result

MAX_LEARNER_PLOTS = 200  # per sweep: learners past this get a page without a picture
MAX_TIMELINE_ROWS = 60  # more learners: the timeline shows learners running per sweep
MAX_CONVERGENCE_LINES = 200  # per sweep panel


@dataclass
class LearnerEntry:
    """What the report says about one learner, from whatever files it has."""

    name: str
    sweep: str
    learner: str
    params: dict
    state: str  # done | unfinished (has a checkpoint) | failed | not started
    npoints: int | None = None
    loss: float | None = None
    goal: dict = field(default_factory=dict)
    reached: str | None = None
    attempts: int | None = None
    elapsed: float | None = None
    restored_npoints: int | None = None
    error: str | None = None


def learner_entry(spec, workdir: str | os.PathLike = ".") -> LearnerEntry:
    """The entry of the learner of `spec` (a LearnerSpec) in `workdir`."""
    files = layout.LearnerFiles.of(spec.name, workdir)
    entry = LearnerEntry(
        name=spec.name,
        sweep=spec.sweep,
        learner=spec.learner,
        params=dict(spec.params),
        state="not started",
        goal=dict(spec.goal),
    )
    if files.result.exists():
        try:
            result = Result.read(files.result)
        except (OSError, ValueError):
            result = None
        if result is not None:
            entry.state = "done"
            entry.npoints = result.npoints
            entry.loss = result.loss
            entry.goal = result.goal
            entry.reached = result.reached
            entry.attempts = result.attempts
            entry.elapsed = result.elapsed
            entry.restored_npoints = result.restored_npoints
            return entry
    meta = read_json_or_none(files.meta)
    if isinstance(meta, dict) and files.checkpoint.exists():
        entry.state = "unfinished"
        entry.npoints = meta.get("npoints")
        entry.attempts = meta.get("attempts")
        entry.elapsed = meta.get("elapsed")
    failure = read_json_or_none(files.failure)
    if isinstance(failure, dict):
        entry.state = "failed"
        entry.error = failure.get("error")
    return entry


def load_entry_learner(entry: LearnerEntry, workdir: str | os.PathLike = "."):
    """The learner's data (final or latest checkpoint); None if it has none yet."""
    if entry.state == "not started":
        return None
    from adaptive_snakemake.results.load import load_learner

    try:
        return load_learner(entry.name, workdir)
    except (KeyError, OSError, ValueError, EOFError):
        return None


# -- HTML ---------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em}
table{border-collapse:collapse;font-size:.85em}
th,td{padding:.15em .45em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{cursor:pointer;background:#f3f3f3;position:sticky;top:0}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td.t,th.t{text-align:left}
tr.row:hover{background:#eef5ff;cursor:pointer}
.done{color:#1a5fb4} .unfinished{color:#c64600} .failed{color:#c01c28;font-weight:bold}
.notstarted{color:#888}
#q{margin:.5em 0;padding:.3em;width:22em}
.learner{display:none} .learner:target,.learner.shown{display:block}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dt{font-weight:bold} img{max-width:100%}
pre{background:#fff3f3;padding:.5em;white-space:pre-wrap}
"""

SCRIPT = """
function sortTable(th){
  const table=th.closest('table'), body=table.tBodies[0], k=th.cellIndex;
  const asc=!th.classList.contains('asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('asc','desc'));
  th.classList.add(asc?'asc':'desc');
  const key=r=>{const c=r.cells[k];const v=c.dataset.v;
    return v===undefined?c.textContent:(v===''?NaN:parseFloat(v));};
  const rows=[...body.rows];
  rows.sort((a,b)=>{let x=key(a),y=key(b);
    if(typeof x==='number'||typeof y==='number'){
      if(isNaN(x))return 1; if(isNaN(y))return -1; return asc?x-y:y-x;}
    return asc?String(x).localeCompare(y):String(y).localeCompare(x);});
  rows.forEach(r=>body.appendChild(r));
}
function filterTable(input){
  const words=input.value.toLowerCase().split(/\\s+/).filter(w=>w);
  document.querySelectorAll('#learners tbody tr').forEach(r=>{
    const text=r.textContent.toLowerCase();
    r.style.display=words.every(w=>text.includes(w))?'':'none';});
}
function showLearner(id){
  document.querySelectorAll('.learner').forEach(s=>s.classList.remove('shown'));
  const s=document.getElementById(id); if(s){s.classList.add('shown');s.scrollIntoView();}
}
document.addEventListener('DOMContentLoaded',()=>{
  document.querySelectorAll('#learners th').forEach(th=>th.onclick=()=>sortTable(th));
  document.querySelectorAll('#learners tr.row').forEach(r=>
    r.onclick=()=>{if(r.dataset.page)showLearner(r.dataset.page);});
  if(location.hash)showLearner(decodeURIComponent(location.hash.slice(1)));
});
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, spec: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float) and not spec:
        return f"{value:.4g}"
    return format(value, spec)


def _cell(value, spec: str = "", text: bool = False) -> str:
    if text:
        return f'<td class="t">{_esc(value if value is not None else "")}</td>'
    sort = "" if value is None or isinstance(value, str) else _esc(value)
    return f'<td data-v="{sort}">{_esc(_fmt(value, spec))}</td>'


def _goal_text(goal: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in goal.items()) or "finishes by itself"


def table_html(entries: list[LearnerEntry], pages: bool = False) -> str:
    """The learners' table: sortable (click a header) and searchable (the box above it)."""
    params: list[str] = []
    for entry in entries:
        params += [key for key in entry.params if key not in params]
    headers = [
        "learner",
        "state",
        *params,
        "points",
        "loss",
        "goal",
        "reached",
        "attempts",
        "elapsed (s)",
        "restored points",
    ]
    text_columns = {"learner", "state", "goal", "reached"}
    head = "".join(
        f'<th class="{"t" if h in text_columns else ""}">{_esc(h)}</th>' for h in headers
    )
    rows = []
    for entry in entries:
        state_class = entry.state.replace(" ", "")
        page = f' data-page="{_esc(entry.name)}"' if pages else ""
        cells = [
            _cell(entry.name, text=True),
            f'<td class="t {state_class}">{_esc(entry.state)}</td>',
            *(
                _cell(entry.params.get(p), text=not isinstance(entry.params.get(p), int | float))
                for p in params
            ),
            _cell(entry.npoints, ","),
            _cell(entry.loss),
            _cell(_goal_text(entry.goal), text=True),
            _cell(entry.reached, text=True),
            _cell(entry.attempts),
            _cell(entry.elapsed, ".1f"),
            _cell(entry.restored_npoints, ","),
        ]
        rows.append(f'<tr class="row"{page}>{"".join(cells)}</tr>')
    return (
        '<input id="q" type="search" placeholder="search learners (e.g. failed, width~0.1)" '
        'oninput="filterTable(this)">'
        f'<table id="learners"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _counts(entries: list[LearnerEntry]) -> str:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.state] = counts.get(entry.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}</body></html>\n"
    )


def learner_page(entry: LearnerEntry, png: bytes | None, note: str = "") -> str:
    fields = [
        ("state", entry.state),
        ("parameters", ", ".join(f"{k}={v}" for k, v in entry.params.items()) or "none"),
        ("learner", entry.learner),
        ("points", _fmt(entry.npoints, ",")),
        ("loss", _fmt(entry.loss)),
        ("goal", _goal_text(entry.goal)),
        ("goal reached", entry.reached or ("no" if entry.state != "done" else "")),
        ("attempts", _fmt(entry.attempts)),
        ("elapsed (s)", _fmt(entry.elapsed, ".1f")),
        ("restored points", _fmt(entry.restored_npoints, ",")),
    ]
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in fields)
    error = f"<pre>{_esc(entry.error)}</pre>" if entry.error else ""
    picture = _img(png, entry.name) if png else f"<p>{_esc(note or 'no data yet')}</p>"
    return (
        f'<section class="learner" id="{_esc(entry.name)}"><h2>{_esc(entry.name)}</h2>'
        f'<p><a href="#" onclick="window.scrollTo(0,0);return false">back to the table</a></p>'
        f"<dl>{items}</dl>{error}{picture}</section>"
    )


def sweep_report(specs, workdir: str | os.PathLike = ".", max_plots: int = MAX_LEARNER_PLOTS):
    """(HTML page, PNG picture) of a sweep in its current state."""
    from adaptive_snakemake.results.plots import draw_sweep_learners, label_of, learner_png

    entries = [learner_entry(spec, workdir) for spec in specs]
    # Only the first max_plots learners are read: their pages' pictures and the sweep's.
    learners = [
        load_entry_learner(entry, workdir) if index < max_plots else None
        for index, entry in enumerate(entries)
    ]
    drawn = min(len(specs), max_plots)
    picture = draw_sweep_learners(specs[:drawn], learners[:drawn], total=len(specs))
    sections = []
    for index, (spec, entry, learner) in enumerate(zip(specs, entries, learners, strict=True)):
        png = None
        note = ""
        if learner is not None:
            png = learner_png(spec, learner, title=f"{spec.sweep}: {label_of(spec)}")
        elif index >= max_plots and entry.state != "not started":
            note = f"pictures are drawn for the first {max_plots} learners of a sweep"
        sections.append(learner_page(entry, png, note))
    sweep = specs[0].sweep
    body = (
        f"<h1>Sweep {_esc(sweep)}</h1><p>{len(entries)} learners ({_esc(specs[0].learner)}): "
        f"{_esc(_counts(entries))}. Click a row for the learner's page.</p>"
        f"{_img(picture, 'sweep ' + sweep)}{table_html(entries, pages=True)}{''.join(sections)}"
    )
    return page(f"sweep {sweep}", body), picture


def write_sweep_report(specs, html_out, png_out, workdir: str | os.PathLike = ".") -> int:
    """Writes the sweep's page and picture; returns the number of learners."""
    text, picture = sweep_report(specs, workdir)
    atomic_write_text(html_out, text)
    atomic_write_bytes(png_out, picture)
    return len(specs)


# -- the whole run: summary, timeline, convergence ------------------------------------------------


def summary_html(entries: list[LearnerEntry]) -> str:
    by_sweep: dict[str, list[LearnerEntry]] = {}
    for entry in entries:
        by_sweep.setdefault(entry.sweep, []).append(entry)
    lines = "".join(
        f"<li>{_esc(s)}: {len(e)} learners, {_esc(_counts(e))}</li>" for s, e in by_sweep.items()
    )
    body = (
        f"<h1>All learners</h1><p>{len(entries)} learners: {_esc(_counts(entries))}.</p>"
        f"<ul>{lines}</ul>{table_html(entries)}"
    )
    return page("all learners", body)


def attempts_table(metrics):
    """One row per job attempt from the metrics history: name, attempt, job_id, start, end,
    npoints at the end, last status (done, failed, running), outcome."""
    import pandas as pd

    if metrics.empty:
        return pd.DataFrame(
            columns=["name", "attempt", "job_id", "start", "end", "npoints", "status", "outcome"]
        )
    grouped = metrics.sort_values("t").groupby(["name", "attempt", "job_id"], sort=False)
    table = grouped.agg(
        start=("t", "min"), end=("t", "max"), npoints=("npoints", "last"), status=("status", "last")
    ).reset_index()
    latest = table.groupby("name")["start"].transform("max")
    table["outcome"] = table["status"].map({"done": "done", "failed": "failed"}).fillna("running")
    # An attempt that is not the learner's latest and did not finish was interrupted.
    interrupted = (table["start"] < latest) & (table["outcome"] == "running")
    table.loc[interrupted, "outcome"] = "interrupted"
    return table.sort_values(["start", "name"], ignore_index=True)


OUTCOME_COLOURS = {
    "done": "#1a5fb4",
    "running": "#2ec27e",
    "interrupted": "#e5a50a",
    "failed": "#c01c28",
}


def timeline_png(metrics, entries: list[LearnerEntry]) -> bytes:
    """When each learner ran (one bar per attempt, coloured by its outcome); with many
    learners, how many ran at once per sweep, and when attempts failed or were cut short."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from adaptive_snakemake.results.plots import _png

    attempts = attempts_table(metrics)
    if attempts.empty:
        figure = Figure(figsize=(7, 1.5))
        axes = figure.subplots()
        axes.text(0.5, 0.5, "no metrics recorded yet", ha="center", va="center")
        axes.axis("off")
        return _png(figure)
    t0 = attempts["start"].min()
    names = sorted(attempts["name"].unique())
    if len(names) <= MAX_TIMELINE_ROWS:
        figure = Figure(figsize=(9, 1.2 + 0.28 * len(names)))
        axes = figure.subplots()
        row = {name: i for i, name in enumerate(names)}
        for a in attempts.itertuples(index=False):
            axes.barh(
                row[a.name],
                max(a.end - a.start, 0.5),
                left=a.start - t0,
                height=0.6,
                color=OUTCOME_COLOURS[a.outcome],
                edgecolor="black",
                linewidth=0.3,
            )
            if a.attempt > 1:
                axes.text(
                    a.start - t0, row[a.name], f" {a.attempt}", va="center", fontsize="x-small"
                )
        axes.set_yticks(range(len(names)))
        axes.set_yticklabels(names, fontsize="x-small")
        axes.invert_yaxis()
        handles = [Patch(color=c, label=o) for o, c in OUTCOME_COLOURS.items()]
        axes.legend(
            handles=handles, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0)
        )
        axes.set_title(
            f"timeline: {len(attempts)} attempts of {len(names)} learners (numbers: attempt)",
            fontsize="small",
        )
    else:
        figure = Figure(figsize=(9, 4))
        axes = figure.subplots()
        attempts["sweep"] = attempts["name"].str.split("/").str[0]
        for sweep, part in attempts.groupby("sweep"):
            times = np.concatenate([part["start"], part["end"]]) - t0
            steps = np.concatenate([np.ones(len(part)), -np.ones(len(part))])
            order = np.argsort(times, kind="stable")
            axes.step(times[order], np.cumsum(steps[order]), where="post", label=f"{sweep}")
        for outcome in ("failed", "interrupted"):
            bad = attempts[attempts["outcome"] == outcome]
            if len(bad):
                axes.plot(
                    bad["end"] - t0,
                    np.zeros(len(bad)),
                    "x",
                    color=OUTCOME_COLOURS[outcome],
                    label=f"{outcome} ({len(bad)})",
                )
        axes.set_ylabel("learners running")
        axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axes.set_title(
            f"timeline: {len(attempts)} attempts of {len(names)} learners", fontsize="small"
        )
    axes.set_xlabel("seconds since the first record")
    figure.tight_layout()
    return _png(figure)


def convergence_png(metrics) -> bytes:
    """Loss against points, one line per learner, one panel per sweep."""
    from matplotlib.figure import Figure

    from adaptive_snakemake.results.plots import _png

    data = metrics.dropna(subset=["loss"]) if not metrics.empty else metrics
    data = data[data["loss"] > 0] if not data.empty else data
    if data.empty:
        figure = Figure(figsize=(7, 1.5))
        axes = figure.subplots()
        axes.text(0.5, 0.5, "no losses recorded yet", ha="center", va="center")
        axes.axis("off")
        return _png(figure)
    data = data.assign(sweep=data["name"].str.split("/").str[0])
    sweeps = sorted(data["sweep"].unique())
    columns = min(3, len(sweeps))
    rows = math.ceil(len(sweeps) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.3 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, sweep in zip(grid.flat, sweeps, strict=False):
        part = data[data["sweep"] == sweep]
        names = sorted(part["name"].unique())
        many = len(names) > 12
        for name in names[:MAX_CONVERGENCE_LINES]:
            line = part[part["name"] == name].sort_values("t")
            label = name.split("/", 1)[1] if "/" in name else name
            axes.plot(
                line["npoints"],
                line["loss"],
                "-",
                linewidth=0.6 if many else 1.2,
                alpha=0.4 if many else 1.0,
                label=None if many else label,
            )
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("points")
        axes.set_ylabel("loss")
        shown = min(len(names), MAX_CONVERGENCE_LINES)
        axes.set_title(
            f"{sweep} ({shown} of {len(names)} learners)" if shown < len(names) else sweep,
            fontsize="small",
        )
        if not many:
            axes.legend(fontsize=6)
    for axes in list(grid.flat)[len(sweeps) :]:
        axes.axis("off")
    figure.suptitle("convergence: loss vs points (metrics history)", fontsize="small")
    figure.tight_layout()
    return _png(figure)


def write_run_report(
    specs, summary_out, timeline_out, convergence_out, workdir: str | os.PathLike = "."
) -> int:
    """The run's summary table, timeline and convergence; returns the metrics records read."""
    from adaptive_snakemake.metrics.history import load_metrics

    entries = [learner_entry(spec, workdir) for spec in specs]
    atomic_write_text(summary_out, summary_html(entries))
    metrics = load_metrics(workdir)
    atomic_write_bytes(timeline_out, timeline_png(metrics, entries))
    atomic_write_bytes(convergence_out, convergence_png(metrics))
    return len(metrics)


def current_learners(workdir: str | os.PathLike = ".", sweep: str | None = None):
    """[(spec-like, learner)] of every learner with a result or a checkpoint (of one sweep),
    described from its own files (no learners.yaml needed)."""
    from adaptive_snakemake.results.load import learner_names, load_learner

    found = []
    for name in learner_names(workdir, sweep):
        try:
            learner = load_learner(name, workdir)
        except (KeyError, OSError, ValueError, EOFError):
            continue
        found.append((Described.of_name(name, type(learner).__name__), learner))
    return found


class Learners(list):
    """The learners a report job describes, handed to it as a params value: a short text in
    the report's job parameters (not every learner's definition), and not a rerun trigger
    (Snakemake compares only params values it can represent: str, numbers, lists, ...)."""

    def __repr__(self) -> str:
        return f"<{len(self)} learners>"

    __str__ = __repr__

    @classmethod
    def of_specs(cls, specs) -> Learners:
        return cls(
            Described(s.name, s.learner, s.sweep, dict(s.params), dict(s.goal)) for s in specs
        )


@dataclass(frozen=True)
class Described:
    """Enough of a LearnerSpec to report and draw a learner: name, learner (class name),
    sweep, params (from the name when not given) and goal."""

    name: str
    learner: str
    sweep: str = ""
    params: dict = field(default_factory=dict)
    goal: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Described:
        return cls(**data)

    @classmethod
    def of_name(cls, name: str, learner: str) -> Described:
        from adaptive_snakemake.results.load import _params

        return cls(name=name, learner=learner, sweep=name.split("/")[0], params=_params(name))
