"""snakemake --profile profiles/pbs for real, against a fake PBS that runs the jobs."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptive_snakemake.pbs.files import StateDir, load_json

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "pbs"
_spec = importlib.util.spec_from_file_location("fake_pbs", DATA / "fake_pbs.py")
fake_pbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pbs)

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
    resources: runtime=1
    shell: "exit 3"
"""


@pytest.fixture
def workdir(tmp_path):
    fake_pbs.install(tmp_path / "bin", sys.executable)
    wd = tmp_path / "wd"
    wd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ADAPTIVE_SNAKEMAKE_PBS_", "SNAKEMAKE_"))
    }
    env.update(
        PATH=os.pathsep.join(
            [str(tmp_path / "bin"), str(Path(sys.executable).parent), env["PATH"]]
        ),
        FAKE_PBS_DIR=str(tmp_path / "server"),
        FAKE_PBS_RUN="1",
        ADAPTIVE_SNAKEMAKE_PBS_POLL_INTERVAL="0.5",
        ADAPTIVE_SNAKEMAKE_PBS_GRACE="5",
    )
    yield wd, env, fake_pbs.FakeServer(tmp_path / "server")
    for job in fake_pbs.FakeServer(tmp_path / "server").jobs().values():
        if job.get("pgid") and job["state"] != "F":  # never leave a fake job running
            try:
                os.killpg(job["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def snakemake(wd, env, *args, **kw):
    argv = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(REPO / "profiles" / "pbs"),
        "--workflow-profile",
        "none",
        "--seconds-between-status-checks",
        "1",
        *args,
    ]
    return subprocess.Popen(
        argv, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def test_profile_runs_jobs_and_retries_failures(workdir):
    wd, env, server = workdir
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail=', "out/fail.txt"', seconds=1))
    proc = snakemake(wd, env, "--retries", "1")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, out  # the failing rule fails, twice
    assert out.count("Error in rule fail") == 2, out
    for name in "abc":
        assert (wd / "out" / f"{name}.txt").read_text() == "mpiexec -n 2\n"  # default-resources

    qsubs = server.calls("qsub")
    assert len(qsubs) == 5
    work = next(argv for argv in qsubs if "work.a" in argv[argv.index("-N") + 1])
    assert "select=1:ncpus=2:mpiprocs=2:mem=500mb" in work and "walltime=00:05:00" in work

    state = StateDir(wd / ".snakemake" / "pbs")
    calls = [json.loads(line) for line in state.qstat_log.read_text().splitlines()]
    polls = [c for c in calls if c["kind"] == "poll"]
    # snakemake asked for every job's status many times; qstat ran once per round.
    assert polls and all(c["caller"] == "sidecar" for c in polls)
    assert len(polls) == load_json(state.cache)["rounds"]
    assert "Cluster sidecar process has terminated (retcode=0)" in out
    assert server.calls("qdel") == []


SLOW_STATUS = "trap '' INT; sleep 1; exec python -m adaptive_snakemake.pbs.status"


@pytest.mark.parametrize("status_cmd", [None, SLOW_STATUS], ids=["fast-status", "slow-status"])
def test_ctrl_c_cancels_every_job_once(workdir, status_cmd):
    """Slow status commands make Ctrl-C land mid-round, where snakemake's cancel() sees
    no jobs at all: then the sidecar cancels them when snakemake stops it."""
    wd, env, server = workdir
    (wd / "Snakefile").write_text(SNAKEFILE.format(fail="", seconds=120))
    extra = ["--cluster-generic-status-cmd", status_cmd] if status_cmd else []
    proc = snakemake(wd, env, *extra, start_new_session=True)
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
    # Cancelled by the cancel command, or by the sidecar when snakemake's cancel() missed
    # jobs that were in the middle of a status round; each job exactly once.
    wait_for_all = time.monotonic() + 20
    while time.monotonic() < wait_for_all and not all(
        j["state"] == "F" for j in server.jobs().values()
    ):
        time.sleep(0.1)
    assert all(j["state"] == "F" and j["exit"] == 271 for j in server.jobs().values())
    cancelled = [i for argv in server.calls("qdel") for i in argv]
    assert sorted(cancelled) == sorted(server.jobs())
