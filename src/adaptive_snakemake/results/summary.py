"""results/summary.csv: one row per learner, from the learners' result.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from adaptive_snakemake.fileio import atomic_write_text
from adaptive_snakemake.results.result import Result


def summary_table(results: list[Result]) -> pd.DataFrame:
    """name, sweep, one column per grid parameter (in the order written), npoints, loss, ..."""
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
    ordered = ["name", "sweep", *param_columns, "npoints", "loss", "elapsed", "attempts"]
    return pd.DataFrame(rows, columns=ordered)


def write_summary(result_files, output: str | Path) -> pd.DataFrame:
    table = summary_table([Result.read(path) for path in result_files])
    atomic_write_text(output, table.to_csv(index=False))
    return table


def write_sweep_done(result_files, output: str | Path) -> list[Result]:
    """The marker that every learner of a sweep reached its goal (what `after:` waits for)."""
    results = [Result.read(path) for path in result_files]
    done = [{"name": r.name, "npoints": r.npoints, "reached": r.reached} for r in results]
    atomic_write_text(output, json.dumps({"learners": done}, indent=1) + "\n")
    return results
