"""Code failures (the learner's function raised) are not retried; infrastructure failures are."""

import json

import pytest

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
  good:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    fixed: {cost: 0}
  user:
    function: userfn:f
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    point_retries: 0
"""
BROKEN = "def f(x):\n    raise ValueError('bug in f')\n"
FIXED = "def f(x):\n    return x * x\n"


def _log(workdir):
    return (workdir / "logs" / "learners" / "user.log").read_text()


@pytest.mark.parametrize("retries_on_error", [0, 1])
def test_code_failure_is_not_retried_and_a_new_run_tries_again(tmp_path, retries_on_error):
    learners = LEARNERS + f"    retries_on_error: {retries_on_error}\n"
    workdir = make_workdir(tmp_path, learners)
    (workdir / "userfn.py").write_text(BROKEN)
    result = run_snakemake(workdir, check=False)  # the profile allows 3 retries
    assert result.returncode != 0
    assert read_result(workdir, "good")["npoints"] == 20  # the others go on
    # the function ran in 1 + retries_on_error attempts; the last retry refused at once,
    # repeating the traceback in the log (Snakemake empties it for every attempt)
    failure = json.loads((workdir / "state" / "user.failed.json").read_text())
    assert failure["code_failures"] == 1 + retries_on_error
    assert failure["attempt"] == 1 + retries_on_error
    assert failure["error"] == "ValueError: bug in f"
    log = _log(workdir)
    assert "not retried: the learner's function raised" in log
    assert "Traceback" in log and "ValueError: bug in f" in log
    assert "Error in rule learner" in result.stdout + result.stderr

    (workdir / "userfn.py").write_text(FIXED)  # the user fixes the function and reruns
    run_snakemake(workdir)
    assert read_result(workdir, "user")["npoints"] == 20
    assert not (workdir / "state" / "user.failed.json").exists()
