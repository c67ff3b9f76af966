"""The robustness suite's short version (benchmarks/robustness.py --quick): bad learners
files are all refused, and no injected fault loses a point or runs a learner twice."""

import json
import subprocess
import sys

import pytest

from tests.workflow_helpers import REPO, environment

pytestmark = pytest.mark.workflow

SEED = "20240610"  # fixed: the same inputs and fault moments in every CI run


def test_quick_robustness_suite(tmp_path):
    figures_file = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/robustness.py", "--quick", "--seed", SEED]
        + ["--json", str(figures_file)],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(run.stdout)  # the table, in the test log
    assert figures_file.exists(), run.stderr[-4000:]
    figures = json.loads(figures_file.read_text())
    inputs, totals = figures["inputs"], figures["totals"]
    assert inputs["tried"] >= 200
    assert inputs["accepted"] == 0, run.stdout
    assert totals["injected"] >= 9, run.stdout
    assert totals["lost"] == 0, run.stdout
    assert totals["duplicates"] == 0, run.stdout
    assert totals["survived"] == totals["injected"], run.stdout
