"""Learners built in Python on the real SLURM test cluster.

The snakemake inside each SLURM job re-parses the workflow; for a sweep built in Python it
must read the manifest the main process wrote instead of importing the user's module and
building every learner again. The user's module is made unimportable inside the jobs'
snakemake to prove it (the learner job itself gets its pickled learner on its command
line, and imports the module only for the function the pickle names).
"""

from __future__ import annotations

import pytest

from adaptive_snakemake import load_learner
from tests.cluster.test_slurm_workflow import job_ids_of, run_slurm, slurm_workdir
from tests.workflow_helpers import read_result

pytestmark = pytest.mark.cluster

USER = """
import functools
import os
import sys
import time

import adaptive

# Building these learners is what every job's snakemake must NOT do: it counts the builds.
with open("builds.log", "a") as log:
    print(os.environ.get("SLURM_JOB_ID", "main"), " ".join(sys.argv[:3]), file=log)


def f(x, a=1.0):
    time.sleep(0.01)
    return a * x**2


def g(x):
    return {"y": x**3, "x_again": x}


def half_uniform_loss(xs, ys):
    return adaptive.learner.learner1D.uniform_loss(xs, ys) / 2


learners = [
    adaptive.Learner1D(functools.partial(f, a=2.0), (-1, 1), loss_per_interval=half_uniform_loss),
    adaptive.BalancingLearner([adaptive.Learner1D(f, (-1, 1)), adaptive.Learner1D(f, (0, 2))]),
    adaptive.DataSaver(adaptive.Learner1D(g, (-1, 1)), arg_picker=lambda d: d["y"]),
]
fnames = ["data/single", "data/balanced", "data/saver"]
"""
LEARNERS = """
sweeps:
  py:
    learners: userlearners:learners
    fnames: userlearners:fnames
    executor: process-pool
    tasks: 2
    goal: {npoints: 40}
    save_interval: 2
    log_interval: 2
    resources: {runtime: 10, mem_mb: 500}
"""


def test_python_built_sweep_runs_on_slurm_without_rebuilding_in_jobs(slurm_cluster, tmp_path):
    workdir = slurm_workdir(tmp_path, slurm_cluster, LEARNERS)
    (workdir / "userlearners.py").write_text(USER)
    code, output = run_slurm(workdir)
    assert code == 0, output[-5000:]
    for name in ("py/data/single", "py/data/balanced", "py/data/saver"):
        assert read_result(workdir, name)["npoints"] >= 40
        assert len(job_ids_of(output, name)) == 1
    assert type(load_learner("py/data/balanced", workdir)).__name__ == "BalancingLearner"
    saver = load_learner("py/data/saver", workdir)
    assert all(extra["x_again"] == x for x, extra in saver.extra_data.items())
    builds = (workdir / "builds.log").read_text().splitlines()
    # The user's module was imported by the main snakemake (to build the learners) and
    # by each learner job (for its function), never by the snakemake inside a job.
    in_jobs = [line for line in builds if not line.startswith("main ")]
    assert len(in_jobs) == 3, builds  # one per learner job
    assert all("adaptive_snakemake/job/__main__.py --spec" in line for line in in_jobs), builds
