"""kill -9 of a learner job or of the whole snakemake run: a rerun resumes from the checkpoint."""

import os
import signal

import psutil
import pytest

from tests.workflow_helpers import (
    checkpoint_npoints,
    make_workdir,
    read_result,
    run_snakemake,
    start_snakemake,
    wait_for,
)

pytestmark = pytest.mark.workflow

SLOW = """
sweeps:
  slow:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: {executor}
    tasks: 2
    goal: {npoints: 400}
    save_interval: 1
    log_interval: 1
    fixed: {cost: 0.02}
"""


def _learner_processes(name: str):
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        result = f"results/{name}/result.json"  # the job gets its paths on its command line
        if "adaptive_snakemake.job" in cmdline and result in cmdline and "python" in cmdline[0]:
            found.append(process)
    return found


@pytest.mark.parametrize("executor", ["mpi4py", "process-pool"])
def test_killed_learner_job_is_retried_and_resumes(tmp_path, executor):
    workdir = make_workdir(tmp_path, SLOW.replace("{executor}", executor))
    run = start_snakemake(workdir)
    try:
        wait_for(lambda: checkpoint_npoints(workdir, "slow") >= 40, 120, "a checkpoint")
        victims = [
            p
            for p in _learner_processes("slow")
            if "adaptive_snakemake.job.mpi_pool" in " ".join(p.cmdline()) or executor != "mpi4py"
        ]
        assert victims, "no learner process found"
        for process in victims:
            os.kill(process.pid, signal.SIGKILL)
        assert run.wait(timeout=300) == 0, (workdir / "snakemake.out").read_text()[-4000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    result = read_result(workdir, "slow")
    assert result["attempts"] == 2
    assert result["restored_npoints"] >= 40
    assert result["npoints"] >= 400


def test_killed_snakemake_run_resumes_after_rerun(tmp_path):
    workdir = make_workdir(tmp_path, SLOW.replace("{executor}", "mpi4py"))
    run = start_snakemake(workdir)
    wait_for(lambda: checkpoint_npoints(workdir, "slow") >= 40, 120, "a checkpoint")
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and every job it started
    run.wait(timeout=30)
    wait_for(lambda: not _learner_processes("slow"), 30, "the learner processes to die")
    saved = checkpoint_npoints(workdir, "slow")
    assert not (workdir / "results" / "slow" / "result.json").exists()

    # The README's recovery: unlock if needed, then the same command again.
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir)
    result = read_result(workdir, "slow")
    assert result["restored_npoints"] >= saved >= 40
    assert result["npoints"] >= 400
    assert result["attempts"] == 2
