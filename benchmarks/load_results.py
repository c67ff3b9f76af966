"""Loading a finished run back into Python: 1,000 learners x 1,000 points.

Builds a workflow directory with 1,000 finished Learner1D learners of 1,000 points each
(results/<sweep>/i~<n>/learner.pickle + result.json, adaptive's own save format, as the
jobs write them; half of them are different learners so the files are not all equal), then
times `load_learners(sweep)` and `load_results(sweep)` (one DataFrame of every point) in
fresh processes, as a notebook would. Prints the seconds. About a minute on 2 shared cores:

    .venv/bin/python benchmarks/load_results.py [--learners 1000] [--points 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import adaptive
import numpy as np

from adaptive_snakemake.results.result import Result

BOUNDS = (-1.0, 1.0)


def f(x, a=1.0):
    return a * x + 0.05**2 / (0.05**2 + x**2)


def filled(npoints: int, seed: int, a: float):
    learner = adaptive.Learner1D(f, BOUNDS)
    xs = [*BOUNDS, *np.random.default_rng(seed).uniform(*BOUNDS, npoints - 2).tolist()]
    for x in xs:
        learner.tell(x, f(x, a))
    return learner


def build(workdir: Path, learners: int, points: int) -> None:
    variants = [filled(points, seed, 1 + seed / 10) for seed in range(2)]
    for i in range(learners):
        name = f"bench/i~{i}"
        directory = workdir / "results" / name
        directory.mkdir(parents=True)
        learner = variants[i % 2]
        learner.save(str(directory / "learner.pickle"))
        Result(
            name=name,
            sweep="bench",
            learner="Learner1D",
            learner_kwargs={"bounds": list(BOUNDS)},
            params={"i": i},
            npoints=learner.npoints,
            loss=float(learner.loss()),
            elapsed=1.0,
            goal={"npoints": points},
            reached="npoints",
            attempts=1,
            restored_npoints=0,
            fingerprint="0" * 16,
        ).write(directory / "result.json")


TIMED = """
import json, sys, time
started = time.perf_counter()
import adaptive, pandas  # what a notebook has imported already
import adaptive_snakemake as asm
from adaptive_snakemake.results import load  # noqa: F401
imported = time.perf_counter()
if sys.argv[2] == "load_learners":
    value = asm.load_learners("bench", sys.argv[1])
    size = sum(l.npoints for l in value.values())
else:
    value = asm.load_results("bench", sys.argv[1])
    size = len(value)
done = time.perf_counter()
print(json.dumps({"seconds": done - imported, "import": imported - started, "size": size}))
"""


def timed(workdir: Path, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", TIMED, str(workdir), what],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        build(workdir, args.learners, args.points)
        print(
            f"built {args.learners} learners x {args.points} points in "
            f"{time.perf_counter() - started:.1f} s"
        )
        expected = {
            "load_learners": args.learners * args.points,
            "load_results": args.learners * args.points,
        }
        for what in ("load_learners", "load_results"):
            runs = [timed(workdir, what) for _ in range(args.repeat)]
            assert all(r["size"] == expected[what] for r in runs), runs
            seconds = sorted(r["seconds"] for r in runs)
            print(
                f"{what}: best {seconds[0]:.2f} s, median {seconds[len(seconds) // 2]:.2f} s "
                f"over {args.repeat} runs ({expected[what]:,} points; import "
                f"{min(r['import'] for r in runs):.2f} s not included)"
            )


if __name__ == "__main__":
    main()
