"""The learners the last snakemake run planned, for the status view.

Written by the main snakemake process when a run starts (workflow/rules/monitor.smk), so
that `adaptive-snakemake status` shows learners that have not started as pending without
parsing config.yaml or learners.yaml itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from adaptive_snakemake import layout
from adaptive_snakemake.fileio import atomic_write_json, read_json_or_none
from adaptive_snakemake.metrics.settings import MonitorSettings


@dataclass(frozen=True)
class Plan:
    names: list[str]
    monitor: MonitorSettings
    planned_at: float


def write_plan(workdir: str | os.PathLike, names, monitor: MonitorSettings) -> None:
    layout.ensure_private_dir(layout.private_dir(workdir))
    atomic_write_json(
        layout.plan_file(workdir),
        {"names": list(names), "monitor": monitor.to_dict(), "planned_at": time.time()},
    )


def read_plan(workdir: str | os.PathLike) -> Plan | None:
    """The last run's plan; None before the first run (or if the file is unreadable)."""
    data = read_json_or_none(layout.plan_file(workdir))
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        return None
    return Plan(
        names=[str(name) for name in data["names"]],
        monitor=MonitorSettings.from_config(data.get("monitor")),
        planned_at=float(data.get("planned_at", 0.0)),
    )
