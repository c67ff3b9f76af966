"""Liveness of processes and the batch job id."""

import os
import subprocess
import sys
import time

from adaptive_snakemake.processes import batch_job_id, find_process, is_alive


def test_alive_dead_and_zombie_processes():
    assert is_alive(os.getpid()) and is_alive(find_process(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    handle = find_process(child.pid)
    deadline = time.monotonic() + 10
    while is_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not is_alive(child.pid)  # exited, not reaped yet: a zombie counts as dead
    assert handle is None or not is_alive(handle)
    child.wait()
    assert not is_alive(child.pid) and find_process(child.pid) is None
    for nothing in (None, True, -1, 2**40):
        assert not is_alive(nothing)
    assert find_process(None) is None  # not this process


def test_batch_job_id(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("PBS_JOBID", raising=False)
    assert batch_job_id() is None
    monkeypatch.setenv("PBS_JOBID", "17.pbs01")
    assert batch_job_id() == "17.pbs01"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert batch_job_id() == "4242"
