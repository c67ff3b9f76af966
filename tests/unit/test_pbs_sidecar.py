"""The sidecar as a real process beside a fake PBS: one qstat per round, whatever the jobs."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from adaptive_snakemake.pbs.decide import JobRecord
from adaptive_snakemake.pbs.files import StateDir, atomic_write_json, load_json
from adaptive_snakemake.pbs.sidecar import Poller, compact

SIDECAR = [sys.executable, "-m", "adaptive_snakemake.pbs.sidecar"]


def read_first_line(proc, timeout=20.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the sidecar printed no vars line"
    return proc.stdout.readline()


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cache_of(state):
    return load_json(state.cache) or {}


def statuses(state):
    return {k.split(".")[0]: v["status"] for k, v in cache_of(state).get("jobs", {}).items()}


def poll_calls(state):
    if not state.qstat_log.exists():
        return []
    calls = [json.loads(line) for line in state.qstat_log.read_text().splitlines()]
    return [c for c in calls if c["kind"] == "poll"]


def gone(pid) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_one_qstat_per_round_for_twenty_jobs(fake):
    state = StateDir().ensure()
    ids = [f"{i}.pbs01" for i in range(1, 21)]
    for i, job_id in enumerate(ids, 1):
        state.register(job_id, f"tok{i}", f"learner.x{i}")
    fake.set_jobs({job_id: ("R", None) for job_id in ids})

    proc = subprocess.Popen(
        [*SIDECAR, "--interval", "0.2", "--grace", "1", "--flavour", "pbspro"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_first_line(proc)
        vars = json.loads(line)
        assert vars["pid"] == proc.pid and vars["flavour"] == "pbspro"
        assert vars["cache"] == str(state.cache) and vars["state_dir"] == str(state.root)

        # Phase 1: twenty running jobs, several rounds.
        wait_for(lambda: cache_of(state).get("rounds", 0) >= 4, what="4 rounds")
        assert set(statuses(state).values()) == {"running"}

        # The status command answers from the cache: no qstat of its own.
        env = {**os.environ, "SNAKEMAKE_CLUSTER_SIDECAR_VARS": line.strip()}
        out = subprocess.check_output(
            f"{sys.executable} -m adaptive_snakemake.pbs.status '7.pbs01'",
            shell=True,
            env=env,
            text=True,
        )
        assert out == "running\n"

        # Phase 2: jobs end in every way there is; one more job is submitted.
        for tok in ("tok11", "tok12"):
            state.marker(tok).write_text("0\n")
        state.marker("tok14").write_text("1\n")
        jobs = {job_id: ("R", None) for job_id in ids[15:]}
        jobs.update({ids[i]: ("F", 0) for i in range(5)})  # 1-5 ok
        jobs.update({ids[i]: ("F", 1) for i in range(5, 8)})  # 6-8 exit 1
        jobs[ids[8]] = ("F", 271)  # 9: qdel
        jobs[ids[9]] = ("F", -29)  # 10: walltime
        # 11, 12, 13: purged by the server (11, 12 left a marker); 14, 15: finished
        # without exit status like the slurm wrapper's C (14 left a marker saying 1).
        jobs[ids[13]] = ("F", None)
        jobs[ids[14]] = ("F", None)
        jobs["21.pbs01"] = ("Q", None)
        fake.set_jobs(jobs)
        state.register("21.pbs01", "tok21", "learner.x21")

        expected = {str(i): "success" for i in (1, 2, 3, 4, 5, 11, 12)}
        expected.update({str(i): "failed" for i in (6, 7, 8, 9, 10, 13, 14, 15)})
        expected.update({str(i): "running" for i in (16, 17, 18, 19, 20, 21)})
        wait_for(lambda: statuses(state) == expected, what="every job decided")
        assert "walltime" in cache_of(state)["jobs"]["10.pbs01"]["reason"].lower()
        assert "no exit marker" in cache_of(state)["jobs"]["13.pbs01"]["reason"]
        rounds_before = cache_of(state)["rounds"]
        wait_for(lambda: cache_of(state)["rounds"] >= rounds_before + 2, what="2 more rounds")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0

    calls = poll_calls(state)
    rounds = cache_of(state)["rounds"]
    # One qstat per round, not one per job per round...
    assert len(calls) == rounds == len(fake.calls("qstat"))
    assert rounds < 20 * 6
    assert all(c["caller"] == "sidecar" for c in calls)
    # ...listing every undecided job once; decided jobs are no longer asked about.
    for argv in fake.calls("qstat"):
        asked = argv[5:]
        assert len(asked) == len(set(asked)) <= 21
    assert calls[0]["njobs"] == 20
    assert calls[-1]["njobs"] == 6  # 16-21
    assert "1.pbs01" not in fake.calls("qstat")[-1]

    # Stopped by snakemake (SIGTERM) with 21, submitted during this run, undecided: the
    # sidecar cancels it. 16-20 were registered before it started: not its to cancel.
    assert wait_for(lambda: fake.calls("qdel"), what="qdel") == [["21.pbs01"]]


def test_sidecar_exits_when_its_parent_dies(fake):
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({SIDECAR + ['--interval', '0.2']!r}, stdout=subprocess.PIPE)\n"
        "sys.stdout.write(p.stdout.readline().decode())\n"
        "sys.stdout.flush()\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    try:
        vars = json.loads(read_first_line(parent))
        sidecar = vars["pid"]
        assert psutil.Process(sidecar).ppid() == parent.pid
        assert vars["flavour"] == "pbspro"  # detected from the fake's qstat --version
        time.sleep(0.5)
        assert not gone(sidecar)
    finally:
        parent.kill()
        parent.wait()
    wait_for(lambda: gone(sidecar), timeout=10, what="the orphaned sidecar to exit")
    assert "parent process is gone" in StateDir().sidecar_log.read_text()


def test_parent_death_leaves_jobs_alone_sigterm_cancels_the_rest(fake):
    state = StateDir().ensure()
    fake.set_jobs({f"{i}.pbs01": ("R", None) for i in range(1, 5)})

    def start():
        proc = subprocess.Popen(
            [*SIDECAR, "--interval", "0.2", "--flavour", "pbspro"], stdout=subprocess.PIPE
        )
        read_first_line(proc)
        return proc

    # Killed snakemake: the sidecar sees its parent change and leaves.
    parent_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({SIDECAR + ['--interval', '0.2', '--flavour', 'pbspro']!r},"
        " stdout=subprocess.PIPE)\n"
        "sys.stdout.write(p.stdout.readline().decode())\n"
        "sys.stdout.flush()\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    sidecar = json.loads(read_first_line(parent))["pid"]
    state.register("1.pbs01", "t1", None)
    wait_for(lambda: "1.pbs01" in cache_of(state).get("jobs", {}), what="job 1 polled")
    parent.kill()
    parent.wait()
    wait_for(lambda: gone(sidecar), timeout=10, what="the orphaned sidecar to exit")
    time.sleep(0.5)
    assert fake.calls("qdel") == []

    # snakemake's own cancel got 2; the sidecar, stopped by SIGTERM, cancels only 3 and 4.
    proc = start()
    for i in (2, 3, 4):
        state.register(f"{i}.pbs01", f"t{i}", None)
    wait_for(lambda: len(cache_of(state).get("jobs", {})) == 4, what="jobs polled")
    state.mark_cancelled(["2.pbs01"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert wait_for(lambda: fake.calls("qdel"), what="qdel") == [["3.pbs01", "4.pbs01"]]

    # With cancel-on-exit off, nothing is cancelled.
    state.register("5.pbs01", "t5", None)
    proc = subprocess.Popen(
        [*SIDECAR, "--interval", "0.2", "--flavour", "pbspro", "--cancel-on-exit", "0"],
        stdout=subprocess.PIPE,
    )
    read_first_line(proc)
    state.register("6.pbs01", "t6", None)
    wait_for(lambda: "6.pbs01" in cache_of(state).get("jobs", {}), what="job 6 polled")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    time.sleep(0.5)
    assert len(fake.calls("qdel")) == 1


def test_sidecar_ignores_ctrl_c_and_stops_on_sigterm(fake):
    proc = subprocess.Popen(
        [*SIDECAR, "--interval", "0.2", "--flavour", "torque"], stdout=subprocess.PIPE
    )
    try:
        read_first_line(proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the whole process group
        time.sleep(0.5)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert poll_calls(StateDir()) == []  # nothing registered: no qstat at all


# The polling round in-process -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, flavour",
    [("json", "pbspro"), ("xml", "torque"), ("text", "slurm-torque")],
)
def test_poll_round_in_every_format(fake, monkeypatch, fmt, flavour):
    monkeypatch.setenv("FAKE_PBS_FORMAT", fmt)
    state = StateDir().ensure()
    for i in (1, 2, 3, 4):
        state.register(f"{i}.pbs01", f"t{i}", None)
    state.marker("t3").write_text("0\n")
    fake.set_jobs({"1.pbs01": ("R", None), "2.pbs01": ("F", 1), "3.pbs01": ("F", None)})
    poller = Poller(state, flavour, grace=100)
    poller.poll_round(now=1000.0)
    got = {k.split(".")[0]: r.status for k, r in poller.records.items()}
    if flavour == "slurm-torque":  # the wrapper's C carries no exit status: 2 awaits its marker
        assert got == {"1": "running", "2": "running", "3": "success", "4": "running"}
    else:
        assert got == {"1": "running", "2": "failed", "3": "success", "4": "running"}
    assert len(fake.calls("qstat")) == 1


def test_failed_qstat_round_decides_nothing(fake, tmp_path):
    state = StateDir().ensure()
    state.register("1.pbs01", "t1", None, when=0.0)  # long ago: grace would have expired
    (tmp_path / "bin" / "qstat").write_text(
        "#!/bin/sh\necho 'pbs_iff: cannot connect' >&2\nexit 2\n"
    )
    poller = Poller(state, "pbspro", grace=1)
    poller.poll_round(now=10_000.0)
    assert poller.records["1.pbs01"].status == "running"
    snapshot = poller.snapshot(10_000.0, 15.0)
    assert (
        snapshot["last_query"]["ok"] is False
        and "cannot connect" in snapshot["last_query"]["error"]
    )
    assert "qstat failed" in state.sidecar_log.read_text()


def test_start_up_compaction_forgets_old_decided_jobs(fake):
    state = StateDir().ensure()
    now = time.time()
    state.register("1.s", "old", None, when=now - 30 * 86400)
    state.register("2.s", "recent", None, when=now - 3600)
    state.register("3.s", "pending", None, when=now - 30 * 86400)
    atomic_write_json(
        state.cache,
        {
            "jobs": {
                "1.s": JobRecord(
                    "1.s", "old", status="success", decided=now - 29 * 86400
                ).to_json(),
                "2.s": JobRecord("2.s", "recent", status="failed", decided=now - 3000).to_json(),
            }
        },
    )
    old_marker = state.marker("old")
    old_marker.write_text("0\n")
    os.utime(old_marker, (now - 29 * 86400, now - 29 * 86400))
    state.marker("recent").write_text("1\n")

    poller = Poller(state, "pbspro")
    poller.load_cache(load_json(state.cache))
    poller.ingest_registry()
    compact(poller, now, retention=7 * 86400)
    assert set(poller.records) == {"2.s", "3.s"}
    assert [e.job_id for e in state.read_registry()] == ["2.s", "3.s"]
    assert not old_marker.exists() and state.marker("recent").exists()
    # The reader notices the rewritten registry and still sees later submissions, and
    # only those count as submitted by this run.
    poller.ingest_registry()
    poller.serving = True
    state.register("4.s", "new", None)
    poller.ingest_registry()
    assert set(poller.records) == {"2.s", "3.s", "4.s"}
    assert poller.submitted_here == {"4.s"}


def test_registry_reader_leaves_a_half_written_line(fake):
    state = StateDir().ensure()
    state.register("1.s", "a", None)
    with open(state.registry, "a") as f:
        f.write("2.s\tb\t-\t12")  # no newline yet
    poller = Poller(state, "pbspro")
    poller.ingest_registry()
    assert set(poller.records) == {"1.s"}
    with open(state.registry, "a") as f:
        f.write("3.0\n")
    poller.ingest_registry()
    assert set(poller.records) == {"1.s", "2.s"}
    assert poller.records["2.s"].submitted == 123.0
