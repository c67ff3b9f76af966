"""results/summary.csv: one row per learner, from the learners' result.json files (a packed
sweep's: from its packs' results files, results/.packs/<pack>.json)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_text
from adaptive_snakemake.results.result import Result, read_results


def _read_all(result_files) -> list[Result]:
    return [result for path in result_files for result in read_results(path)]


def summary_rows(results: list[Result]) -> tuple[list[str], list[dict]]:
    """The columns (name, sweep, one per grid parameter in the order written, npoints, loss,
    elapsed, attempts) and one row per learner."""
    param_columns: list[str] = []
    for result in results:
        param_columns += [key for key in result.params if key not in param_columns]
    rows = [
        {
            "name": r.name,
            "sweep": r.sweep,
            **r.params,
            "npoints": r.npoints,
            "loss": r.loss,
            "elapsed": r.elapsed,
            "attempts": r.attempts,
        }
        for r in results
    ]
    return ["name", "sweep", *param_columns, "npoints", "loss", "elapsed", "attempts"], rows


def write_summary(result_files, output: str | Path) -> int:
    """Writes the summary; returns its number of rows. (The csv module, not pandas: its
    import alone took longer than the summary of 10,000 learners, at the end of every run.)"""
    columns, rows = summary_rows(_read_all(result_files))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    atomic_write_text(output, text.getvalue())
    return len(rows)


def write_sweep_done(result_files, output: str | Path) -> list[Result]:
    """The marker that every learner of a sweep reached its goal (what `after:` waits for)."""
    results = _read_all(result_files)
    done = [{"name": r.name, "npoints": r.npoints, "reached": r.reached} for r in results]
    atomic_write_text(output, json.dumps({"learners": done}, indent=1) + "\n")
    return results
