"""`after:` — a sweep starts when every learner of the sweeps it names reached its goal."""

import pytest

from adaptive_snakemake import load_learner
from tests.workflow_helpers import make_workdir, read_result, run_snakemake

pytestmark = pytest.mark.workflow

LEARNERS = """
defaults:
  executor: sequential
  tasks: 1
  save_interval: 1
  log_interval: 1
  goal: {npoints: 20}
sweeps:
  first:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {offset: [0.1, 0.2]}
    fixed: {cost: 0.01}
  second:
    function: downstream:shifted
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    after: [first]
"""
# A function that reads the results of the sweep it runs after, as the README shows.
DOWNSTREAM = """
import functools

from adaptive_snakemake import load_learner


@functools.cache
def _upstream_points():
    return load_learner("first/offset~0.1").npoints


def shifted(x):
    return x + _upstream_points()
"""


def test_sweep_waits_for_the_sweeps_it_names_and_can_read_their_results(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    (workdir / "downstream.py").write_text(DOWNSTREAM)
    dry = run_snakemake(workdir, "-n")
    assert "rule sweep_done" in dry.stdout and "results/.sweeps/first.done" in dry.stdout

    run_snakemake(workdir, "--cores", "3")
    upstream_done = max(
        (workdir / "results" / "first" / f"offset~{o}" / "result.json").stat().st_mtime
        for o in ("0.1", "0.2")
    )
    log = workdir / "logs" / "learners" / "second.log"
    assert (workdir / "results" / ".sweeps" / "first.done").stat().st_mtime >= upstream_done
    assert log.stat().st_ctime > upstream_done  # started only after the upstream results
    assert read_result(workdir, "second")["npoints"] == 20
    second = load_learner("second", workdir)
    assert all(y - x == 20 for x, y in second.data.items())
