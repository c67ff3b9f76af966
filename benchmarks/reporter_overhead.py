"""Learner throughput with the metrics reporter on (1 s interval, real collector) vs off.

Runs the in-job runner in this process, alternating on/off, and prints the ratio of
median throughputs (target: at least 0.98).
Usage: python benchmarks/reporter_overhead.py [--points 3000] [--repeat 3]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from adaptive_snakemake.job.runner import LearnerRun
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.metrics.reporter import open_reporter
from adaptive_snakemake.metrics.service import start_collector, stop_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.specs.parse import parse_specs

REPO = Path(__file__).resolve().parents[1]


def spec(points: int):
    document = {
        "sweeps": {
            "bench": {
                "function": "examples.functions:peak",
                "learner": "Learner1D",
                "learner_kwargs": {"bounds": [-1, 1]},
                "executor": "sequential",
                "tasks": 1,
                "goal": {"npoints": points},
                "save_interval": 3600,
                "log_interval": 1,
                "fixed": {"cost": 0.0005},
            }
        }
    }
    return parse_specs(document)[0]


def throughput(workdir: Path, points: int, reporting: bool, run_id: int) -> float:
    root = workdir / f"run{run_id}"
    root.mkdir()
    learner_spec = spec(points)
    run = LearnerRun(learner_spec, LearnerFiles.of(learner_spec.name, root))
    if reporting:
        run.reporter = open_reporter(
            "bench", 1, root / "bench.log", workdir=workdir, log_interval=1.0
        )
    started = time.perf_counter()
    run.run()
    elapsed = time.perf_counter() - started
    if run.reporter is not None:
        run.reporter.close()
    return points / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.chdir(REPO)  # examples.functions importable
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start_collector(workdir, MonitorSettings.from_config({"host": "127.0.0.1"}), os.getpid())
        rates = {True: [], False: []}
        try:
            for i in range(args.repeat):
                for reporting in (False, True):
                    rates[reporting].append(
                        throughput(workdir, args.points, reporting, 2 * i + reporting)
                    )
        finally:
            stop_collector(workdir)
        received = sum(1 for _ in open(workdir / "logs" / "metrics.jsonl"))
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"{args.points} points, sequential executor, 0.5 ms function, median of {args.repeat}:")
    print(f"  reporter off: {off:8.1f} points/s   {[round(r) for r in rates[False]]}")
    print(f"  reporter on : {on:8.1f} points/s   {[round(r) for r in rates[True]]}")
    print(f"  records received by the collector: {received}")
    print(f"  ratio on/off: {on / off:.3f}  (target >= 0.98)")


if __name__ == "__main__":
    main()
