"""Packed sweeps on the real SLURM test cluster: one SLURM job per pack (process pool and MPI
ranks shared by its learners), per-learner files, and a scancel'ed pack resubmitted with
every learner resuming from its checkpoint."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.cluster.test_slurm_workflow import (
    RUN_TIMEOUT_S,
    cancel_leftovers,
    kill_snakemake,
    sacct_steps,
    slurm_args,
    slurm_workdir,
)
from tests.workflow_helpers import checkpoint_npoints, read_result, start_snakemake, wait_for

pytestmark = pytest.mark.cluster

LEARNERS = """
defaults:
  function: examples.functions:peak
  learner: Learner1D
  learner_kwargs: {bounds: [-1, 1]}
  save_interval: 1
  log_interval: 1
  resources: {runtime: 10, mem_mb: 500}
sweeps:
  pool:
    executor: process-pool
    tasks: 2
    pack: 2
    goal: {npoints: 40}
    combos: {offset: [-0.5, 0.0, 0.5]}
    fixed: {cost: 0.005}
  mpi:
    executor: mpi4py
    tasks: 2
    pack: 2
    goal: {npoints: 200}
    combos: {offset: [-0.5, 0.5]}
    fixed: {cost: 0.03}
"""
POOL = ["pool/offset~-0.5", "pool/offset~0.0", "pool/offset~0.5"]
MPI = ["mpi/offset~-0.5", "mpi/offset~0.5"]


def _pack_jobs(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, rule) of every pack job snakemake submitted."""
    return re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(pack_\w+?)/", output)


def test_packs_run_as_one_slurm_job_each_and_a_cancelled_pack_resumes(slurm_cluster, tmp_path):
    workdir = slurm_workdir(tmp_path, slurm_cluster, LEARNERS)
    run = start_snakemake(workdir, *slurm_args())
    try:
        wait_for(
            lambda: all(checkpoint_npoints(workdir, name) >= 20 for name in MPI),
            240,
            "checkpoints of both MPI learners",
        )
        victim = json.loads((workdir / "state" / f"{MPI[0]}.lock").read_text())["job_id"]
        subprocess.run(["scancel", victim], check=True)
        code = run.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if run.poll() is None:
            kill_snakemake(run)
        cancel_leftovers(workdir)
    output = (workdir / "snakemake.out").read_text()
    assert code == 0, output[-5000:]

    jobs = _pack_jobs(output)
    rules = sorted(rule for _, rule in jobs)
    # 2 pool packs, the MPI pack twice (cancelled, resubmitted): 3 learners in 2 jobs, 2 in 1
    assert rules == ["pack_mpi_0", "pack_mpi_0", "pack_pool_0", "pack_pool_1"], jobs
    assert victim in [job for job, rule in jobs if rule == "pack_mpi_0"]
    for name in POOL:
        result = read_result(workdir, name)
        assert result["npoints"] >= 40 and result["attempts"] == 1
        assert (workdir / "results" / name / "learner.pickle").exists()
    for name in MPI:
        result = read_result(workdir, name)
        assert result["npoints"] >= 200
        assert result["attempts"] == 2 and result["restored_npoints"] >= 20, result
    # The MPI pack's learners shared one world under srun, in one job step: 2 workers on
    # the 2 CPUs held, and the manager rank (tasks: 2 -> 3 ranks).
    resubmitted = next(job for job, rule in jobs if rule == "pack_mpi_0" and job != victim)
    steps = [step for step in sacct_steps(resubmitted) if step["NTasks"] == "3"]
    assert steps and all(step["State"] == "COMPLETED" for step in steps), steps
    summary = (workdir / "results" / "summary.csv").read_text()
    assert all(name in summary for name in POOL + MPI)
