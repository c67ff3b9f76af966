"""results/summary.csv: one row per learner, from the learners' result.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from adaptive_snakemake.fileio import atomic_write_text

COLUMNS = ["name", "sweep", "npoints", "loss", "elapsed", "attempts"]


def read_results(result_files) -> list[dict]:
    return [json.loads(Path(path).read_text()) for path in result_files]


def summary_table(results: list[dict]) -> pd.DataFrame:
    """name, sweep, one column per grid parameter (in the order written), npoints, loss, ..."""
    param_columns: list[str] = []
    rows = []
    for result in results:
        for key in result["params"]:
            if key not in param_columns:
                param_columns.append(key)
        rows.append({**{k: result.get(k) for k in COLUMNS}, **result["params"]})
    ordered = ["name", "sweep", *param_columns, "npoints", "loss", "elapsed", "attempts"]
    return pd.DataFrame(rows, columns=ordered)


def write_summary(result_files, output: str | Path) -> pd.DataFrame:
    table = summary_table(read_results(result_files))
    atomic_write_text(output, table.to_csv(index=False))
    return table
