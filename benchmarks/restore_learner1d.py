"""Restoring a Learner1D checkpoint: our restore_learner against adaptive's own learner.load.

adaptive's load goes through Learner1D.tell_many, which is quadratic, so it is timed side by
side with ours at 10k and 20k points and extrapolated to 100k (pass --full to wait for the
real thing: minutes). Ours is also timed at 100k. Both load the same file; the benchmark
checks they end in the same state. Runs in about a minute (2 shared cores):

    .venv/bin/python benchmarks/restore_learner1d.py [--full]
"""

import argparse
import tempfile
import time
from pathlib import Path

import adaptive
import numpy as np

from adaptive_snakemake.job.checkpoint import restore_learner, save_learner

BOUNDS = (-1.0, 1.0)


def peak(x):
    return x + 0.05**2 / (0.05**2 + x**2)


def new_learner():
    return adaptive.Learner1D(peak, BOUNDS)


def filled_learner(npoints, seed=0):
    """A learner told ``npoints`` points one by one (near linear, unlike tell_many)."""
    learner = new_learner()
    xs = [*BOUNDS, *np.random.default_rng(seed).uniform(*BOUNDS, npoints - 2).tolist()]
    for x in xs:
        learner.tell(x, peak(x))
    return learner


def timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def restore_ours(path):
    learner = new_learner()
    restore_learner(learner, path)
    return learner


def restore_adaptive(path):
    learner = new_learner()
    learner.load(str(path))
    return learner


def same_state(a, b):
    return (
        a.data == b.data
        and list(a.losses.items()) == list(b.losses.items())
        and a.loss() == b.loss()
        and a.ask(10) == b.ask(10)
    )


def measure(learner, path, time_adaptive):
    """Save ``learner`` to ``path``; time our restore and, if asked, adaptive's load."""
    _, saved = timed(lambda: save_learner(learner, path))
    ours, t_ours = timed(lambda: restore_ours(path))
    t_theirs = None
    if time_adaptive:
        theirs, t_theirs = timed(lambda: restore_adaptive(path))
        assert same_state(ours, theirs), f"states differ at {learner.npoints} points"
    return {
        "points": learner.npoints,
        "mb": path.stat().st_size / 1e6,
        "save": saved,
        "ours": t_ours,
        "theirs": t_theirs,
        "measured": time_adaptive,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time adaptive's load at 100k")
    args = parser.parse_args()

    full, built = timed(lambda: filled_learner(100_000))
    print(f"built a 100,000-point Learner1D by telling points one by one in {built:.1f} s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for npoints in (10_000, 20_000, 100_000):
            learner = full if npoints == 100_000 else filled_learner(npoints)
            path = Path(tmp) / f"learner{npoints}.pickle"
            rows.append(measure(learner, path, time_adaptive=npoints < 100_000 or args.full))
            print(f"  {npoints:>7,} points done", flush=True)
    if rows[-1]["theirs"] is None:
        # Quadratic: scale the largest measurement by the square of the size ratio.
        rows[-1]["theirs"] = rows[-2]["theirs"] * (rows[-1]["points"] / rows[-2]["points"]) ** 2

    print()
    header = ("points", "file MB", "save s", "ours s", "adaptive s", "adaptive/ours")
    print("{:>8} {:>8} {:>7} {:>7} {:>11} {:>14}".format(*header))
    for row in rows:
        theirs = f"{row['theirs']:.1f}" + ("" if row["measured"] else "*")
        ratio = f"{row['theirs'] / row['ours']:.0f}x"
        print(
            f"{row['points']:>8,} {row['mb']:>8.2f} {row['save']:>7.2f} {row['ours']:>7.2f} "
            f"{theirs:>11} {ratio:>14}"
        )
    if not args.full:
        print("* extrapolated from the 20,000-point measurement (tell_many is quadratic)")
    print("ours and adaptive's load ended in the same state at every size where both ran")


if __name__ == "__main__":
    main()
