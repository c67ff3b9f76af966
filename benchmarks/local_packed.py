"""Workload W on this machine, without a cluster: packed against one job per learner.

    python benchmarks/local_packed.py [--repeat 3] [--cores 2]

W is adaptive-scheduler's README sweep: 20 Learner1D learners of h(x, pow, a) (pow 0-9 x
a 0.1/0.5), 200 points each, 10 ms per point: 40 s of points, an ideal makespan of
40 / cores seconds. Each variant is `snakemake --cores N results/summary.csv` in a fresh
copy of the workflow (the learners and their summary; no pictures), timed from the command
to its exit. Issue 9's target: packed <= 1.5 x the ideal.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.workflow_helpers import environment, make_workdir, snakemake_command  # noqa: E402

FUNCTION = """
import time


def h(x, pow=1, a=0.1):
    time.sleep(0.01)
    return x**pow + a**2 / (a**2 + x**2)
"""
W = """
sweeps:
  h:
    function: wfunctions:h
    learner: Learner1D
    learner_kwargs: {{bounds: [-1, 1]}}
    combos: {{pow: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], a: [0.1, 0.5]}}
    goal: {{npoints: 200}}
    save_interval: 300
    log_interval: 30
    {layout}
"""
VARIANTS = {
    # one job per learner, each with one pool worker: `cores` jobs at a time
    "one job per learner": "executor: process-pool\n    tasks: 1",
    # two packs of 10, each job with one worker: both packs at once on 2 cores
    "packed (pack: 10, tasks: 1)": "executor: process-pool\n    tasks: 1\n    pack: 10",
    # one pack of 20 on a pool of 2 workers
    "packed (pack: 20, tasks: 2)": "executor: process-pool\n    tasks: 2\n    pack: 20",
}


def makespan(layout: str, cores: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = make_workdir(Path(tmp), W.format(layout=layout))
        (workdir / "wfunctions.py").write_text(FUNCTION)
        started = time.perf_counter()
        subprocess.run(
            snakemake_command("--cores", str(cores), "results/summary.csv"),
            cwd=workdir,
            env=environment(),
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    ideal = 20 * 200 * 0.01 / args.cores
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):  # alternating, so that a busy moment hits every variant
        for name, layout in VARIANTS.items():
            times[name].append(makespan(layout, args.cores))
    print(f"W on {args.cores} cores, ideal {ideal:.0f} s, {args.repeat} runs each (median):")
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:32s} {median:6.1f} s  {median / ideal:4.2f} x ideal  ({runs})")


if __name__ == "__main__":
    main()
