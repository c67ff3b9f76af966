"""The ipyparallel, dask-mpi and dask executors through the real workflow (local run): the
learner rules launch each the right way (dask-mpi under mpiexec as rule learner_mpi,
ipyparallel as rule learner_mpi with its engines under mpiexec), and a
scheduler file that does not exist is refused before anything runs."""

import pytest

from tests.unit.test_executors import dask_cluster  # noqa: F401  (a fixture)
from tests.workflow_helpers import make_workdir, read_result, run_snakemake

LEARNERS = """
defaults:
  function: examples.functions:peak
  learner: Learner1D
  learner_kwargs: {{bounds: [-1, 1]}}
  fixed: {{cost: 0.005}}
  goal: {{npoints: 50}}
  save_interval: 1
  resources: {{runtime: 5, mem_mb: 500}}
sweeps:
  ipp:
    executor: ipyparallel
    tasks: 3
  daskmpi:
    executor: dask-mpi
    tasks: 3
  existing:
    executor: dask
    scheduler_file: {scheduler_file}
"""


@pytest.mark.timeout(240)
def test_each_executor_runs_its_learner_to_the_goal(tmp_path, dask_cluster):  # noqa: F811
    workdir = make_workdir(tmp_path, LEARNERS.format(scheduler_file=dask_cluster))
    dry = run_snakemake(workdir, "-n", "-p")
    assert "mpiexec -n 3 python -m adaptive_snakemake.job" in dry.stdout  # dask-mpi
    # ipyparallel: an MPI job whose python starts once and its engines with the launcher.
    assert "env ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER=mpiexec python -m adaptive_snakemake.job" in (
        dry.stdout
    )
    names = ("ipp", "daskmpi", "existing")
    # Only the learners: the summary, pictures and report are not what is tested here.
    run_snakemake(workdir, "--cores", "3", *(f"results/{n}/result.json" for n in names))
    for name in names:
        result = read_result(workdir, name)
        assert result["npoints"] == 50, result
        assert result["attempts"] == 1
    log = (workdir / "logs" / "learners" / "ipp.log").read_text()
    assert "the engines are one MPI world of 2 ranks started by `mpiexec -n 2`" in log, log


def test_missing_scheduler_file_is_refused_before_anything_runs(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS.format(scheduler_file="gone/scheduler.json"))
    result = run_snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "sweep 'existing', key 'scheduler_file'" in message
    assert "gone/scheduler.json does not exist" in message
    assert not (workdir / "state").exists()
