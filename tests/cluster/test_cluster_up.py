"""The SLURM test cluster is up and behaves as the rest of the project assumes."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import SlurmCluster

COMMAND_TIMEOUT_S = 120
WORLD_SIZE = "from mpi4py import MPI; print(MPI.COMM_WORLD.Get_size())"


def run(*cmd: str | Path, cwd: Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc.stdout


def wait_for(predicate, timeout_s: float, what: str):
    """Poll predicate until it returns something truthy; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def sacct_state(job_id: str) -> tuple[str, str] | None:
    """(State, ExitCode) of a job's allocation once accounting has its end, else None."""
    out = run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State,ExitCode")
    for line in out.splitlines():
        jid, state, exit_code = line.split("|")
        if jid == job_id and state not in ("PENDING", "RUNNING", "COMPLETING"):
            return state, exit_code
    return None


def sbatch_and_wait(cluster: SlurmCluster, tmp_path: Path, command: str) -> str:
    out = run(
        "sbatch",
        "--parsable",
        "--wait",
        f"--partition={cluster.partition}",
        f"--account={cluster.account}",
        "--time=2",
        "--ntasks=1",
        f"--output={tmp_path / 'slurm-%j.out'}",
        f"--wrap={command}",
        cwd=tmp_path,
        check=False,
    )
    return out.strip().split(";")[0]


def test_sinfo_shows_the_node_ready(slurm_cluster: SlurmCluster) -> None:
    out = run("sinfo", "-h", "-N", "-p", slurm_cluster.partition, "-o", "%N|%T|%c|%P")
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == 1, out
    node, state, cpus, partition = rows[0]
    assert node == slurm_cluster.node
    assert state in ("idle", "mixed", "allocated", "completing"), state
    assert int(cpus) == slurm_cluster.cpus
    assert partition == f"{slurm_cluster.partition}*"  # * marks the default partition


def test_config_has_the_settings_the_project_relies_on(slurm_cluster: SlurmCluster) -> None:
    config = run("scontrol", "show", "config")
    settings = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in config.splitlines())
    )
    assert settings["AuthInfo"] == "cred_expire=10"
    assert settings["MinJobAge"] == "300 sec"
    assert settings["MpiDefault"] == "none"
    assert settings["AccountingStorageType"] == "accounting_storage/slurmdbd"


def test_sacct_lists_a_finished_sbatch_job(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job_id = sbatch_and_wait(slurm_cluster, tmp_path, "echo hello-from-sbatch")
    assert job_id.isdigit(), job_id
    state = wait_for(lambda: sacct_state(job_id), 30, f"sacct to record job {job_id}")
    assert state == ("COMPLETED", "0:0")
    assert (tmp_path / f"slurm-{job_id}.out").read_text().strip() == "hello-from-sbatch"
    account = run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "Account").strip()
    assert account == slurm_cluster.account


def test_sacct_reports_a_failed_job_with_its_exit_code(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    job_id = sbatch_and_wait(slurm_cluster, tmp_path, "exit 3")
    state = wait_for(lambda: sacct_state(job_id), 30, f"sacct to record job {job_id}")
    assert state == ("FAILED", "3:0")


def test_srun_pmi2_gives_one_mpi_world(slurm_cluster: SlurmCluster) -> None:
    out = run(
        "srun",
        "--mpi=pmi2",
        "-n",
        "2",
        f"--partition={slurm_cluster.partition}",
        "--time=2",
        slurm_cluster.python,
        "-c",
        WORLD_SIZE,
    )
    assert out.split() == ["2", "2"]


def test_srun_without_mpi_gives_separate_worlds_of_size_one(
    slurm_cluster: SlurmCluster,
) -> None:
    # MpiDefault=none: this is the silent failure a learner job must detect itself.
    out = run(
        "srun",
        "-n",
        "2",
        f"--partition={slurm_cluster.partition}",
        "--time=2",
        slurm_cluster.python,
        "-c",
        WORLD_SIZE,
    )
    assert out.split() == ["1", "1"]


def qstat_full(job_id: str) -> dict[str, str]:
    out = run("qstat", "-f", job_id)
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep:
            fields[key] = value
    return fields


def test_qsub_qstat_qdel_round_trip(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#PBS -N roundtrip\n#PBS -l nodes=1:ppn=1,walltime=00:05:00\nsleep 300\n"
    )
    # The torque qsub wrapper ignores '#PBS -o' (it passes its own -o/-e to sbatch).
    job_id = run("qsub", "-o", tmp_path / "out.txt", "-j", "oe", script, cwd=tmp_path).strip()
    assert re.fullmatch(r"\d+", job_id), job_id

    short = run("qstat", job_id).splitlines()
    assert short[0].split()[:2] == ["Job", "id"]
    row = short[-1].split()
    assert row[0] == job_id and row[1] == "roundtrip"
    assert row[4] in ("Q", "R")

    fields = wait_for(
        lambda: (f := qstat_full(job_id)) and f.get("job_state") == "R" and f,
        30,
        f"qstat -f to show job {job_id} running",
    )
    assert fields["Job_Name"] == "roundtrip"
    assert fields["Resource_List.walltime"] == "00:05:00"
    assert fields["Account_Name"] == slurm_cluster.account

    run("qdel", job_id)
    wait_for(
        lambda: qstat_full(job_id).get("job_state") == "C",
        30,
        f"qstat -f to show job {job_id} finished (C)",
    )
    state = wait_for(lambda: sacct_state(job_id), 30, f"sacct to record job {job_id}")
    assert state[0] == "CANCELLED by 0"  # sacct names who cancelled (uid 0): parse the first word
