"""Job start of one learner of a 10,000-learner sweep built in Python, against YAML.

    python benchmarks/python_sweep_job_start.py [--learners 10000] [--repeat 5]

Issue 11 asks that a job of a big Python-built sweep must not pay for building every
learner: its start must stay within 1 s of a YAML sweep's. Both jobs run one learner to a
goal of 1 point (so the time is start-up, restore and teardown), with the same function.
Also printed: what the main snakemake process pays once (import, build, pickle, manifest)
and what the snakemake inside each cluster job pays (reading the manifest).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.specs import python_sweeps
from adaptive_snakemake.specs.parse import load_specs

USER = """
import functools

import adaptive


def f(x, a=1.0):
    return a * x**2


learners = [adaptive.Learner1D(functools.partial(f, a=i), (-1, 1)) for i in range({n})]
fnames = [f"data/a_{{i}}" for i in range({n})]
"""
PYTHON_SWEEP = """
sweeps:
  py: {{learners: "user:learners", fnames: "user:fnames", executor: sequential, tasks: 1,
        goal: {{npoints: 1}}}}
"""
YAML_SWEEP = """
sweeps:
  ym:
    function: user:f
    learner: Learner1D
    learner_kwargs: {{bounds: [-1, 1]}}
    combos: {{a: {values}}}
    executor: sequential
    tasks: 1
    goal: {{npoints: 1}}
"""


def job_seconds(workdir: Path, spec, repeat: int) -> list[float]:
    env = {**os.environ, "ADAPTIVE_SNAKEMAKE_MONITOR": "off"}
    times = []
    for attempt in range(repeat):
        files = LearnerFiles.of(f"{spec.name}-{attempt}", workdir)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "adaptive_snakemake.job",
                "--spec",
                str(spec),
                "--checkpoint",
                str(files.checkpoint),
                "--learner-pickle",
                str(files.learner_pickle),
                "--result",
                str(files.result),
            ],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "user.py").write_text(textwrap.dedent(USER.format(n=args.learners)))
        (workdir / "python.yaml").write_text(PYTHON_SWEEP.format())
        values = list(range(args.learners))
        (workdir / "yaml.yaml").write_text(YAML_SWEEP.format(values=values))
        os.chdir(workdir)
        sys.path.insert(0, str(workdir))
        started = time.perf_counter()
        python_specs = load_specs("python.yaml", max_learners=10**6)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        load_specs("python.yaml", 10**6, python_sweeps.from_manifest)
        manifest_s = time.perf_counter() - started
        started = time.perf_counter()
        yaml_specs = load_specs("yaml.yaml", max_learners=10**6)
        yaml_parse_s = time.perf_counter() - started
        middle = args.learners // 2
        python_job = job_seconds(workdir, python_specs[middle], args.repeat)
        yaml_job = job_seconds(workdir, yaml_specs[middle], args.repeat)
    py, ym = statistics.median(python_job), statistics.median(yaml_job)
    print(f"{args.learners:,} learners, medians of {args.repeat} jobs (seconds)")
    print(f"  job of one learner, built in Python : {py:6.2f}")
    print(f"  job of one learner, YAML sweep      : {ym:6.2f}")
    print(f"  difference                          : {py - ym:+6.2f}  (target: within 1 s)")
    print(f"  main process: import, build, pickle, manifest: {build_s:6.2f}")
    print(f"  snakemake in a cluster job: read the manifest: {manifest_s:6.2f}")
    print(f"  for reference, parsing the YAML sweep         : {yaml_parse_s:6.2f}")


if __name__ == "__main__":
    main()
