"""The status command (from the sidecar's cache, or alone) and the cancel command."""

import json
import os
import subprocess
import sys
import time

import pytest

from adaptive_snakemake.pbs import cancel, status
from adaptive_snakemake.pbs.config import SidecarVars
from adaptive_snakemake.pbs.decide import JobRecord
from adaptive_snakemake.pbs.files import StateDir, atomic_write_json


@pytest.fixture
def fake(fake, monkeypatch):
    """The shared fake PBS server, answering as PBS Pro."""
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_PBS_FLAVOUR", "pbspro")
    return fake


def run_status(job_id, capsys):
    assert status.main([job_id]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one line, as the plugin requires
    return out.strip()


def live_sidecar(monkeypatch, state, jobs, pid=None, updated=None):
    """A cache as a live sidecar writes it; the sidecar's pid is ours (alive)."""
    cache = state.cache
    atomic_write_json(
        cache,
        {
            "v": 1,
            "updated": time.time() if updated is None else updated,
            "jobs": {r.job_id: r.to_json() for r in jobs},
        },
    )
    vars = SidecarVars(
        os.getpid() if pid is None else pid, str(state.root), str(cache), "pbspro", 15.0, 120.0, {}
    )
    monkeypatch.setenv("SNAKEMAKE_CLUSTER_SIDECAR_VARS", vars.to_line())


def test_answers_from_the_cache_without_qstat(fake, monkeypatch, capsys):
    state = StateDir().ensure()
    live_sidecar(
        monkeypatch,
        state,
        [
            JobRecord("1.pbs01", status="running"),
            JobRecord("2.pbs01", status="success"),
            JobRecord("3.pbs01", status="failed"),
        ],
    )
    assert [run_status(f"{i}.pbs01", capsys) for i in (1, 2, 3)] == ["running", "success", "failed"]
    assert fake.calls("qstat") == []
    assert not state.qstat_log.exists()


def test_unknown_id_is_registered_for_the_next_round(fake, monkeypatch, capsys):
    state = StateDir().ensure()
    live_sidecar(monkeypatch, state, [])
    assert run_status("77.pbs01", capsys) == "running"
    assert run_status("77.pbs01", capsys) == "running"
    assert [e.job_id for e in state.read_registry()] == ["77.pbs01"]  # once, not per call
    assert fake.calls("qstat") == []


def test_registered_but_not_yet_polled_is_running(fake, monkeypatch, capsys):
    state = StateDir().ensure()
    state.register("5.pbs01", "tok", "learner.x")
    live_sidecar(monkeypatch, state, [])
    assert run_status("5.pbs01", capsys) == "running"
    assert len(state.read_registry()) == 1


@pytest.mark.parametrize(
    "pid, age",
    [(None, 0.0), (2**22 + 12345, 0.0), ("self", 3600.0)],
    ids=["no-sidecar", "dead-sidecar", "stale-cache"],
)
def test_without_a_live_sidecar_one_qstat_per_call(fake, monkeypatch, capsys, pid, age):
    state = StateDir().ensure()
    state.register("5.pbs01", "tok", "learner.x", when=time.time())
    if pid is not None:
        live_sidecar(
            monkeypatch,
            state,
            [],
            pid=os.getpid() if pid == "self" else pid,
            updated=time.time() - age,
        )
    fake.set_jobs({"5.pbs01": ("R", None)})
    assert run_status("5.pbs01", capsys) == "running"
    fake.set_jobs({"5.pbs01": ("F", 0)})
    assert run_status("5.pbs01", capsys) == "success"
    assert fake.calls("qstat") == [["-f", "-x", "-F", "json", "5.pbs01"]] * 2
    calls = [json.loads(line) for line in state.qstat_log.read_text().splitlines()]
    assert [(c["caller"], c["njobs"]) for c in calls] == [("status", 1), ("status", 1)]
    # Decided once, answered from the cache ever after.
    assert run_status("5.pbs01", capsys) == "success"
    assert len(fake.calls("qstat")) == 2


def test_alone_forgotten_job_uses_marker_then_grace(fake, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_PBS_GRACE", "60")
    state = StateDir().ensure()
    state.register("6.pbs01", "tok6", None, when=time.time())
    state.register("7.pbs01", "tok7", None, when=time.time() - 3600)
    state.register("8.pbs01", "tok8", None, when=time.time())
    state.marker("tok6").write_text("0\n")
    fake.set_jobs({})  # the server forgot all three
    assert run_status("6.pbs01", capsys) == "success"
    assert run_status("7.pbs01", capsys) == "failed"  # gone for an hour, no marker
    assert run_status("8.pbs01", capsys) == "running"  # just submitted: wait for the marker


def test_qstat_trouble_means_running(fake, monkeypatch, capsys, tmp_path):
    (tmp_path / "bin" / "qstat").write_text(
        "#!/bin/sh\necho 'cannot connect to server' >&2\nexit 2\n"
    )
    StateDir().ensure().register("9.pbs01", "t", None)
    assert run_status("9.pbs01", capsys) == "running"


def test_never_fails_even_when_broken(fake, monkeypatch, capsys):
    monkeypatch.setenv("ADAPTIVE_SNAKEMAKE_PBS_FLAVOUR", "nonsense")
    assert status.main(["1.pbs01"]) == 0
    out, err = capsys.readouterr()
    assert out == "running\n" and "nonsense" in err


def test_as_the_plugin_calls_it(fake, monkeypatch):
    """`<status-cmd> '<jobid>'` through a shell, with the vars in the environment."""
    state = StateDir().ensure()
    live_sidecar(monkeypatch, state, [JobRecord("3.pbs01", status="failed")])
    out = subprocess.check_output(
        f"{sys.executable} -m adaptive_snakemake.pbs.status '3.pbs01'", shell=True, text=True
    )
    assert out == "failed\n"


def test_cancel_one_qdel_for_all_ids(fake, monkeypatch):
    fake.set_jobs({f"{i}.pbs01": ("R", None) for i in range(1, 6)})
    ids = [f"{i}.pbs01" for i in range(1, 6)]
    assert cancel.main(ids) == 0
    deadline = time.time() + 10
    while not fake.calls("qdel") and time.time() < deadline:
        time.sleep(0.05)
    assert fake.calls("qdel") == [ids]
    assert "qdel 1.pbs01 2.pbs01" in StateDir().cancel_log.read_text()
    assert cancel.main([]) == 0


def test_cancel_does_not_wait_for_a_slow_qdel(fake, tmp_path):
    (tmp_path / "bin" / "qdel").write_text("#!/bin/sh\nsleep 5\n")
    start = time.monotonic()
    # Run as the plugin does: no shell, killed after 2 s.
    subprocess.run([sys.executable, "-m", "adaptive_snakemake.pbs.cancel", "1.pbs01"], timeout=2)
    assert time.monotonic() - start < 2
