"""Reporter and collector over real ZeroMQ sockets on 127.0.0.1."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import zmq

from adaptive_snakemake.fileio import read_json_or_none
from adaptive_snakemake.layout import metrics_file, status_file
from adaptive_snakemake.metrics.address import (
    ENV_VAR,
    MonitorAddress,
    publish_address,
)
from adaptive_snakemake.metrics.keys import ensure_keys, load_key_pair
from adaptive_snakemake.metrics.pidfile import running_collector
from adaptive_snakemake.metrics.record import record_problem
from adaptive_snakemake.metrics.reporter import open_reporter
from adaptive_snakemake.metrics.service import start_collector, stop_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.status import status
from tests.unit.metrics_helpers import (  # noqa: F401 (no_monitor_env: autouse)
    free_port,
    local_settings,
    no_monitor_env,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


def read_status(workdir):
    return read_json_or_none(status_file(workdir))


def collector_listening(workdir, pid=None):
    status_now = read_status(workdir)
    info = running_collector(workdir)
    if not status_now or not info or (pid is not None and info["pid"] != pid):
        return None
    return status_now if status_now["collector"]["pid"] == info["pid"] else None


class CollectorProcess:
    """The collector run exactly as the workflow runs it: its own process."""

    def __init__(self, workdir: Path, settings: MonitorSettings):
        self.workdir = workdir
        self.settings = settings
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adaptive_snakemake.metrics.collector",
                "--workdir",
                str(self.workdir),
                "--settings",
                json.dumps(self.settings.to_dict()),
            ],
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: collector_listening(self.workdir, self.process.pid), what="collector")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def status(self):
        return read_status(self.workdir)


@pytest.fixture
def workdir(tmp_path):
    yield tmp_path
    stop_collector(tmp_path)


@pytest.fixture
def collector(workdir):
    settings = local_settings()
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    del os.environ[ENV_VAR]  # jobs find the address through the file
    process = CollectorProcess(workdir, settings).start()
    yield process
    process.stop()


def metrics(fields=None, **changes):
    values = {"elapsed": 1.0, "npoints": 10, "loss": 0.5, "rate": 2.0, "status": "running"}
    values.update(fields or {}, **changes)
    return values


def stored_names(workdir):
    path = metrics_file(workdir)
    if not path.exists():
        return []
    return [json.loads(line)["name"] for line in path.read_text().splitlines()]


def test_records_reach_metrics_file_and_status(collector, workdir):
    log = workdir / "logs" / "learners" / "h" / "a~1.log"
    reporter = open_reporter("h/a~1", 2, log, workdir, log_interval=5)
    for i in range(5):
        assert reporter.send(metrics(npoints=i, loss=float("inf") if i == 0 else 1 / i))
    reporter.close()
    status_now = wait_for(
        lambda: (s := collector.status()) and s["collector"]["stored"] == 5 and s, what="5 records"
    )
    entry = status_now["learners"]["h/a~1"]
    assert entry["state"] == "running" and entry["records"] == 5 and entry["interval"] == 5
    record = entry["record"]
    assert record["npoints"] == 4 and record["attempt"] == 2 and record["job_id"] == "local"
    assert record["pid"] == os.getpid() and record["rss_mb"] > 0
    collector.stop()
    lines = [json.loads(line) for line in metrics_file(workdir).read_text().splitlines()]
    assert [r["npoints"] for r in lines] == [0, 1, 2, 3, 4]
    assert lines[0]["loss"] is None  # adaptive's initial infinite loss
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged == lines  # the job log holds the same records
    table = status(workdir)
    assert table.loc[0, "name"] == "h/a~1" and table.loc[0, "npoints"] == 4


def test_job_id_comes_from_the_batch_system(collector, workdir, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "98765")
    reporter = open_reporter("x", 1, None, workdir)
    reporter.send(metrics())
    reporter.close()
    wait_for(lambda: "x" in (collector.status() or {}).get("learners", {}), what="record")
    assert collector.status()["learners"]["x"]["record"]["job_id"] == "98765"


def test_without_collector_send_never_blocks_and_memory_stays_flat(workdir):
    settings = local_settings()  # nobody listens on this port
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    reporter = open_reporter("lonely", 1, None, workdir)
    process = psutil.Process()
    slowest = 0.0
    rss = []
    start = time.perf_counter()
    for i in range(10_000):
        t0 = time.perf_counter()
        reporter.send(metrics(npoints=i))
        slowest = max(slowest, time.perf_counter() - t0)
        if i in (1_000, 9_999):
            rss.append(process.memory_info().rss)
    total = time.perf_counter() - start
    assert slowest < 0.1, f"one send took {slowest:.3f} s"
    assert total < 10
    assert rss[1] - rss[0] < 4 * 2**20, "memory grows while the collector is away"
    assert reporter.dropped >= 10_000 - 100  # only the small send queue holds any
    t0 = time.perf_counter()
    reporter.close()
    assert time.perf_counter() - t0 < 1.0


def test_job_exits_promptly_with_a_dead_collector_even_without_close(workdir):
    settings = local_settings()
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from adaptive_snakemake.metrics.reporter import open_reporter
        r = open_reporter("quitter", 1, None, Path({str(workdir)!r}))
        for i in range(100):
            r.send({{"elapsed": 1.0, "npoints": i, "loss": 1.0, "rate": 1.0, "status": "running"}})
        """
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert time.perf_counter() - t0 < 5


def test_disabled_monitor_still_logs_json_lines(workdir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "off")
    log = workdir / "job.log"
    reporter = open_reporter("quiet", 1, log, workdir)
    assert reporter.send(metrics()) is False
    reporter.close()
    assert json.loads(log.read_text())["name"] == "quiet"


def test_records_resume_after_collector_restarts_on_same_port(collector, workdir):
    reporter = open_reporter("steady", 1, None, workdir)
    for i in range(3):
        assert reporter.send(metrics(npoints=i))
    wait_for(lambda: collector.status()["collector"]["stored"] == 3, what="first records")
    collector.stop(signal.SIGKILL)
    for i in range(3, 10):  # sent while nobody listens
        reporter.send(metrics(npoints=i))
        time.sleep(0.02)
    restarted = CollectorProcess(workdir, collector.settings).start()
    try:
        i = 10

        def got_new_records():
            nonlocal i
            i += 1
            reporter.send(metrics(npoints=i))
            entry = restarted.status()["learners"].get("steady")
            return entry and entry["record"]["npoints"] >= 10

        wait_for(got_new_records, timeout=20, what="records after restart")
    finally:
        reporter.close()
        restarted.stop()


def authorized_push(workdir, endpoint, context, options=None):
    keys = ensure_keys(workdir)
    sock = context.socket(zmq.PUSH)
    sock.linger = 0
    client_public, client_secret = load_key_pair(keys.client_secret)
    sock.curve_publickey = client_public
    sock.curve_secretkey = client_secret
    sock.curve_serverkey = load_key_pair(keys.server_public)[0]
    for option, value in (options or {}).items():
        sock.setsockopt(option, value)
    sock.connect(endpoint)
    return sock


def valid_frame(name, **changes):
    record = {
        "v": 1,
        "name": name,
        "attempt": 1,
        "job_id": "local",
        "host": "h",
        "pid": 1,
        "t": time.time(),
        "elapsed": 0.0,
        "npoints": 0,
        "loss": None,
        "rate": 0.0,
        "cpu": 0.0,
        "rss_mb": 1.0,
        "status": "running",
    }
    record.update(changes)
    return json.dumps(record).encode()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/adaptive-snakemake-was-unpickled",))


def malformed_frames(count, rng):
    good = json.loads(valid_frame("m"))
    kinds = []
    for i in range(count):
        kind = i % 8
        if kind == 0:
            kinds.append([rng.randbytes(rng.randint(0, 300))])
        elif kind == 1:
            kinds.append([b"{" * rng.randint(4097, 60_000)])  # over max_record_bytes
        elif kind == 2:  # valid JSON, wrong types or values
            bad = good
            while record_problem(bad) is None:
                field = rng.choice(list(good))
                bad = dict(good, **{field: rng.choice(["1", [], {}, True, -5, None, "x" * 2000])})
            kinds.append([json.dumps(bad).encode()])
        elif kind == 3:
            kinds.append([pickle.dumps(Evil()) if i % 2 else pickle.dumps(good)])
        elif kind == 4:
            kinds.append([valid_frame("m"), valid_frame("m")])  # multipart
        elif kind == 5:
            kinds.append([rng.choice([b"[]", b"null", b"1e999", b'"x"', b"{}", b"NaN"])])
        elif kind == 6:
            kinds.append([valid_frame("m", loss=float("nan"))])
        else:
            kinds.append([valid_frame("m")[:-1] + b',"extra":1}'])
    return kinds


def test_malformed_frames_from_key_holder_are_dropped_and_counted(collector, workdir):
    import random

    marker = Path("/tmp/adaptive-snakemake-was-unpickled")
    marker.unlink(missing_ok=True)
    endpoint = f"tcp://127.0.0.1:{collector.settings.port}"
    context = zmq.Context()
    try:
        sock = authorized_push(workdir, endpoint, context, {zmq.SNDHWM: 100_000})
        frames = malformed_frames(10_000, random.Random(7))
        for parts in frames:
            sock.send_multipart(parts)  # blocking: every frame reaches the collector
        status_now = wait_for(
            lambda: (s := collector.status())["collector"]["received"] == 10_000 and s,
            timeout=60,
            what="10,000 frames received",
        )
        counters = status_now["collector"]
        assert counters["stored"] == 0
        assert sum(counters["dropped"].values()) == 10_000
        assert all(counters["dropped"][k] > 0 for k in counters["dropped"])
        # status.json lists the reasons that occurred: here every network reason
        assert set(counters["dropped"]) == {"too_large", "not_json", "invalid", "multipart"}
        assert status_now["learners"] == {}
        # Frames beyond ZeroMQ's size cap only cost that sender its connection.
        huge = authorized_push(workdir, endpoint, context)
        for size in (1 << 20, 8 << 20):
            huge.send(b"{" * size)
        huge.close()
        time.sleep(0.5)
        assert collector.process.poll() is None
        sock.send(valid_frame("survivor"))
        wait_for(lambda: "survivor" in collector.status()["learners"], what="valid record")
        assert not marker.exists()
    finally:
        context.destroy(linger=0)


@pytest.mark.parametrize("client", ["plain", "unknown key", "wrong server key"])
def test_client_without_the_key_cannot_deliver(collector, workdir, client):
    endpoint = f"tcp://127.0.0.1:{collector.settings.port}"
    context = zmq.Context()
    try:
        sock = context.socket(zmq.PUSH)
        sock.linger = 0
        if client != "plain":
            public, secret = zmq.curve_keypair()
            keys = ensure_keys(workdir)
            if client == "wrong server key":
                public, secret = load_key_pair(keys.client_secret)
                server = zmq.curve_keypair()[0]
            else:
                server = load_key_pair(keys.server_public)[0]
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = (
                public,
                secret,
                server,
            )
        sock.connect(endpoint)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sock.send(valid_frame("intruder"), zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(0.01)
        # An authorized job right after shows the collector was listening all along.
        good = authorized_push(workdir, endpoint, context)
        good.send(valid_frame("member"))
        wait_for(lambda: "member" in collector.status()["learners"], what="authorized record")
        assert collector.status()["collector"]["received"] == 1
        assert "intruder" not in collector.status()["learners"]
    finally:
        context.destroy(linger=0)
    collector.stop()
    assert stored_names(workdir) == ["member"]


def test_collector_exits_when_its_parent_is_killed(workdir):
    settings = local_settings()
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import json, os, sys, time
                from adaptive_snakemake.metrics.service import start_collector
                from adaptive_snakemake.metrics.settings import MonitorSettings
                settings = MonitorSettings(**json.loads({json.dumps(settings.to_dict())!r}))
                print(start_collector({str(workdir)!r}, settings, os.getpid()), flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    collector_pid = int(parent.stdout.readline())
    wait_for(lambda: collector_listening(workdir, collector_pid), what="collector")
    collector = psutil.Process(collector_pid)
    parent.kill()
    parent.wait()
    t0 = time.monotonic()

    def gone():
        try:
            return collector.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, timeout=5, what="collector to exit")
    assert time.monotonic() - t0 < 5
    assert running_collector(workdir) is None


def test_start_collector_is_idempotent_and_stop_stops_it(workdir):
    settings = local_settings()
    t0 = time.perf_counter()
    pid = start_collector(workdir, settings, os.getpid())
    assert time.perf_counter() - t0 < 0.5
    assert json.loads(os.environ[ENV_VAR])["endpoint"].endswith(f":{settings.port}")
    wait_for(lambda: collector_listening(workdir, pid), what="collector")
    assert start_collector(workdir, settings, os.getpid()) == pid
    # A second collector started by hand leaves the first alone.
    second = CollectorProcess(workdir, settings)
    second.process = subprocess.Popen(
        [sys.executable, "-m", "adaptive_snakemake.metrics.collector", "--workdir", str(workdir)],
        stderr=subprocess.DEVNULL,
    )
    assert second.process.wait(20) == 0
    assert running_collector(workdir)["pid"] == pid
    assert stop_collector(workdir) is True
    assert running_collector(workdir) is None
    assert stop_collector(workdir) is False


def test_disabled_monitor_starts_nothing_and_tells_jobs(workdir):
    assert start_collector(workdir, MonitorSettings(enabled=False), os.getpid()) is None
    assert os.environ[ENV_VAR] == json.dumps({"v": 1, "enabled": False})
    assert running_collector(workdir) is None


def test_silent_job_is_marked_stale(workdir):
    settings = local_settings(stale_intervals=3)
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    collector = CollectorProcess(workdir, settings).start()
    try:
        silent = open_reporter("silent", 1, None, workdir, log_interval=0.2)
        finished = open_reporter("finished", 1, None, workdir, log_interval=0.2)
        for _ in range(3):
            silent.send(metrics())
            finished.send(metrics())
        finished.send(metrics(status="done"))
        learners = wait_for(
            lambda: (
                len((collector.status() or {}).get("learners", {})) == 2
                and collector.status()["learners"]
            ),
            what="both learners",
        )
        assert learners["silent"]["state"] == "running"
        t0 = time.monotonic()
        learners = wait_for(
            lambda: (s := collector.status()["learners"])["silent"]["state"] == "stale" and s,
            what="stale",
        )
        assert time.monotonic() - t0 >= 0.3  # not before 3 intervals of 0.2 s (minus polling)
        assert learners["finished"]["state"] == "done"
        table = status(workdir).set_index("name")
        assert table.loc["silent", "state"] == "stale"
        assert table.loc["finished", "state"] == "done"
        silent.send(metrics())  # heard from again: running
        wait_for(
            lambda: collector.status()["learners"]["silent"]["state"] == "running",
            what="running again",
        )
        silent.close()
        finished.close()
    finally:
        collector.stop()


def test_taken_port_is_reported_and_collector_exits(workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = local_settings(port=taken.getsockname()[1])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "adaptive_snakemake.metrics.collector",
                "--workdir",
                str(workdir),
                "--settings",
                json.dumps(settings.to_dict()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen on tcp://127.0.0.1:" in result.stderr
    assert running_collector(workdir) is None
