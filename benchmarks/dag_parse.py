"""`snakemake -n` with 10,000 learners vs a trivial Snakefile with 10,000 independent targets.

Both run on this machine in one go, alternating, best of --repeat; prints the ratio
(target: at most 1.5). Usage: python benchmarks/dag_parse.py [--learners 10000] [--repeat 2]
"""

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TRIVIAL = """
N = int(config.get("targets", 10000))


rule all:
    input:
        expand("out/{i}.txt", i=range(N)),


rule one:
    output:
        "out/{i}.txt",
    shell:
        "touch {output}"
"""


def learners_yaml(n: int) -> str:
    side = math.isqrt(n)
    assert side * side == n, "use a square number of learners"
    offsets = ", ".join(str(round(-1 + 2 * i / side, 6)) for i in range(side))
    widths = ", ".join(str(round(0.001 * (i + 1), 6)) for i in range(side))
    return f"""
sweeps:
  big:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {{bounds: [-1, 1]}}
    combos: {{offset: [{offsets}], width: [{widths}]}}
    executor: process-pool
    tasks: 2
"""


def timed(command, cwd) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    # Both print nothing per job; both build the whole DAG for the default target `all`.
    snakemake = [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2", "--quiet", "all"]
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp, "trivial")
        trivial.mkdir()
        (trivial / "Snakefile").write_text(TRIVIAL)
        ours = Path(tmp, "ours")
        for name in ("workflow", "profiles", "examples", "config"):
            shutil.copytree(REPO / name, ours / name)
        (ours / "config" / "learners.yaml").write_text(learners_yaml(args.learners))
        config = ["--config", f"targets={args.learners}"]  # --config takes the rest of the line
        times = {"trivial": [], "ours": []}
        for _ in range(args.repeat):
            times["trivial"].append(timed([*snakemake, *config], trivial))
            times["ours"].append(timed([*snakemake, "--workflow-profile", "none"], ours))
    best = {k: min(v) for k, v in times.items()}
    print(f"snakemake -n, {args.learners} targets, best of {args.repeat}:")
    print(f"  trivial Snakefile : {best['trivial']:6.2f} s   {times['trivial']}")
    print(f"  adaptive-snakemake: {best['ours']:6.2f} s   {times['ours']}")
    print(f"  ratio ours/trivial: {best['ours'] / best['trivial']:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
