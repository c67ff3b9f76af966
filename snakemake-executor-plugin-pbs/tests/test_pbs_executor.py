"""snakemake --executor pbs for real, against a fake PBS server that runs the jobs here
(the `workdir` fixture, conftest.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow

SNAKEFILE = """
rule all:
    input: expand("out/{{name}}.txt", name=["a", "b", "c"]){fail}

rule work:
    output: "out/{{name}}.txt"
    wildcard_constraints: name="[abc]"
    threads: 2
    resources: tasks=2, runtime=5, mem_mb=500
    shell: "echo {{resources.mpi}} -n {{resources.tasks}} > {{output}}; sleep {seconds}"

rule fail:
    output: "out/fail.txt"
    resources: runtime=1, pbs_queue="long", pbs_extra="-m n"
    shell: "exit 3"
"""


def snakemake(wd, env, *args, **kw):
    argv = [
        sys.executable,
        "-m",
        "snakemake",
        "--executor",
        "pbs",
        "--jobs",
        "10",
        "--default-resources",
        "mpi='mpiexec'",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "5",
        *args,
    ]
    return subprocess.Popen(
        argv, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def events(wd, kind):
    lines = (wd / ".snakemake" / "pbs" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_jobs_run_failures_retry_and_qstat_runs_once_per_round(workdir, fmt):
    """json: PBS Pro's exit status decides; text: the slurm wrapper's `C` without one,
    where the job's exit marker decides."""
    wd, env, server = workdir
    flavour = {"json": "pbspro", "text": "slurm-torque"}[fmt]
    env.update(FAKE_PBS_FORMAT=fmt, SNAKEMAKE_PBS_FLAVOUR=flavour)
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail=', "out/fail.txt"', seconds=1))
    proc = snakemake(wd, env, "--retries", "1")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, out  # the failing rule fails, twice
    assert out.count("Error in rule fail") == 2, out
    for name in "abc":
        assert (wd / "out" / f"{name}.txt").read_text() == "mpiexec -n 2\n"

    qsubs = server.calls("qsub")
    assert len(qsubs) == 5
    work = next(argv for argv in qsubs if "work.a" in argv[argv.index("-N") + 1])
    if flavour == "pbspro":
        assert "select=1:ncpus=2:mpiprocs=2:mem=500mb" in work and "walltime=00:05:00" in work
    else:
        assert work.count("-l") == 1 and "nodes=1:ppn=2,mem=500mb,walltime=00:05:00" in work
    fail = next(argv for argv in qsubs if argv[argv.index("-N") + 1].startswith("fail"))
    assert fail[fail.index("-q") + 1] == "long" and fail[-3:-1] == ["-m", "n"]
    log = Path(work[work.index("-o") + 1])
    assert log.parent == wd / "logs" / "pbs" and log.name.startswith("work.a.")
    assert list((wd / ".snakemake" / "pbs" / "scripts").iterdir()) == []  # qsub has its copy

    # Every job's status was asked for many times; qstat ran once per round for all.
    rounds = events(wd, "status")
    qstats = server.calls("qstat")
    assert len(qstats) == len(rounds) >= 3
    assert max(r["njobs"] for r in rounds) >= 3  # the three work jobs in one call
    decided = {i: d for r in rounds for i, d in r["decided"].items()}
    assert sorted(d[0] for d in decided.values()) == ["failed"] * 2 + ["success"] * 3
    source = "qstat" if fmt == "json" else "exit marker"
    assert all(d[1].startswith(f"{source}: exit status") for d in decided.values()), decided
    assert f"failed: {source}: exit status" in out
    assert server.calls("qdel") == []


def test_settings_from_the_environment_and_a_failed_qsub(workdir):
    wd, env, server = workdir
    env.update(
        FAKE_PBS_FORMAT="xml",
        SNAKEMAKE_PBS_FLAVOUR="torque",
        SNAKEMAKE_PBS_QUEUE="batch",
        SNAKEMAKE_PBS_EXTRA_ARGS="-m n",
        SNAKEMAKE_PBS_LOG_DIR="joblogs",
    )
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail="", seconds=0))
    proc = snakemake(wd, env, "out/a.txt")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    ((argv),) = server.calls("qsub")
    assert "nodes=1:ppn=2,mem=500mb,walltime=00:05:00" in argv
    assert argv[argv.index("-q") + 1] == "batch" and argv[-3:-1] == ["-m", "n"]
    assert Path(argv[argv.index("-o") + 1]).parent == wd / "joblogs"
    assert len(argv[argv.index("-N") + 1]) <= 15  # Torque's name limit

    refusing = "#!/bin/sh\necho 'qsub: Unknown queue' >&2\nexit 3\n"
    (server.root.parent / "bin" / "qsub").write_text(refusing)
    proc = snakemake(wd, env, "out/b.txt")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "PBS submission failed" in out and "Unknown queue" in out


def test_flavour_is_detected_from_qstat(workdir):
    wd, env, server = workdir
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail="", seconds=0))
    proc = snakemake(wd, env, "out/a.txt")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "flavour pbspro (detected from qstat)" in out
    assert server.calls("qstat")[0] == ["--version"]
    assert "select=1:ncpus=2:mpiprocs=2:mem=500mb" in server.calls("qsub")[0]


def test_ctrl_c_cancels_every_job_with_one_qdel(workdir):
    wd, env, server = workdir
    env.update(SNAKEMAKE_PBS_FLAVOUR="pbspro")
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail="", seconds=120))
    proc = snakemake(wd, env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            jobs = server.jobs()
            if len(jobs) == 3 and all(j["state"] == "R" for j in jobs.values()):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"jobs never all ran: {server.jobs()}")
        time.sleep(2)  # let a few status rounds pass, so that Ctrl-C may hit one
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Terminating processes on user request" in out, out
    assert server.calls("qdel") == [sorted(server.jobs())]  # one call, every job once
    assert all(j["state"] == "F" and j["exit"] == 271 for j in server.jobs().values())
