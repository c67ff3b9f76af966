"""Intermittent point failures on the real SLURM test cluster: the point is evaluated
again inside the job (point_retries), so the learner reaches its goal in its one job."""

from __future__ import annotations

import pytest

from tests.cluster.test_slurm_workflow import job_ids_of, run_slurm, slurm_workdir
from tests.workflow_helpers import read_result

pytestmark = pytest.mark.cluster

LEARNERS = """
sweeps:
  flaky:
    function: examples.functions:flaky
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    fixed: {marks_dir: marks, every: 5}
    executor: process-pool
    tasks: 2
    point_retries: 2
    goal: {npoints: 40}
    save_interval: 2
    log_interval: 2
    resources: {runtime: 10, mem_mb: 500}
"""


def test_points_that_fail_once_do_not_fail_the_job(slurm_cluster, tmp_path):
    workdir = slurm_workdir(tmp_path, slurm_cluster, LEARNERS)
    (workdir / "marks").mkdir()
    code, output = run_slurm(workdir)
    assert code == 0, output[-5000:]
    assert len(job_ids_of(output, "flaky")) == 1  # no resubmission
    result = read_result(workdir, "flaky")
    assert result["npoints"] >= 40 and result["attempts"] == 1
    log = (workdir / "logs" / "learners" / "flaky.log").read_text()
    assert "evaluating it again (1 of 2 retries)" in log
    assert len(list((workdir / "marks").iterdir())) > 0  # points did fail once
