"""Metrics never hurt a learner, and never lose a record uncounted (issue 10: 6 and 15).

The disk-full tests fill a real, small tmpfs (they need root to mount it and are skipped
otherwise); nothing is mocked.
"""

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from adaptive_snakemake.fileio import read_json_or_none
from adaptive_snakemake.layout import metrics_file, status_file
from adaptive_snakemake.metrics.address import ENV_VAR, MonitorAddress, publish_address
from adaptive_snakemake.metrics.keys import ensure_keys, load_key_pair
from adaptive_snakemake.metrics.pidfile import running_collector
from adaptive_snakemake.metrics.record import parse_record
from adaptive_snakemake.metrics.reporter import open_reporter
from adaptive_snakemake.metrics.service import stop_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.store import MetricsFile
from tests.unit.metrics_helpers import (  # noqa: F401 (no_monitor_env: autouse)
    free_port,
    local_settings,
    no_monitor_env,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


def counters(workdir) -> dict:
    return (read_json_or_none(status_file(workdir)) or {}).get("collector") or {}


def start_collector_process(workdir: Path, settings: MonitorSettings) -> subprocess.Popen:
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    os.environ.pop(ENV_VAR, None)  # jobs find the address through the file
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_snakemake.metrics.collector",
            "--workdir",
            str(workdir),
            "--settings",
            json.dumps(settings.to_dict()),
        ],
        stderr=open(workdir / "collector.err", "wb"),  # noqa: SIM115
    )

    def listening():
        info = running_collector(workdir)
        return info and info["pid"] == process.pid and counters(workdir).get("pid") == process.pid

    wait_for(listening, what="collector")
    return process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


@pytest.fixture
def workdir(tmp_path):
    yield tmp_path
    stop_collector(tmp_path)


def metrics(**changes):
    values = {"elapsed": 1.0, "npoints": 10, "loss": 0.5, "rate": 2.0, "status": "running"}
    values.update(changes)
    return values


def logged_records(path: Path) -> list[dict]:
    return [parse_record(line, len(line)) for line in path.read_bytes().splitlines()]


# -- 6: a record over max_record_bytes -----------------------------------------------------


def test_oversize_records_are_shortened_or_dropped_and_counted_never_raised(
    workdir, monkeypatch, capsys
):
    host = "n" * 200 + ".cluster.example.org"
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    settings = local_settings(max_record_bytes=512)
    collector = start_collector_process(workdir, settings)
    try:
        fits = "é" * 100  # 600 bytes as \u escapes, 200 as UTF-8
        too_long = "é" * 300  # 600 bytes even as UTF-8: no record of it fits 512 bytes
        logs = {name: workdir / "logs" / f"{len(name)}.log" for name in (fits, too_long)}
        shortened = open_reporter(fits, 1, logs[fits], workdir, log_interval=1)
        dropped = open_reporter(too_long, 1, logs[too_long], workdir, log_interval=1)
        assert shortened.send(metrics(npoints=1)) is True  # raised ValueError before the fix
        assert dropped.send(metrics(npoints=1)) is False
        assert dropped.send(metrics(npoints=2)) is False
        assert shortened.truncated == 1 and shortened.dropped == 0
        assert dropped.dropped_by_reason["too_large"] == 2 and dropped.dropped == 2
        # Not a record at all (a name beyond the record's 1,024 characters; numpy numbers
        # that are not plain numbers): counted as invalid, never raised.
        invalid = open_reporter("y" * 1025, 1, None, workdir)
        assert invalid.send(metrics()) is False
        assert invalid.dropped_by_reason["invalid"] == 1
        assert shortened.send(metrics(npoints=np.int64(2), loss=np.float64("inf"))) is True
        stored = wait_for(lambda: counters(workdir).get("stored") == 2, what="2 records")
        assert stored
        for reporter in (shortened, dropped, invalid):
            reporter.close()
    finally:
        stop_process(collector)
    lines = [json.loads(line) for line in metrics_file(workdir).read_bytes().splitlines()]
    assert [r["name"] for r in lines] == [fits, fits]  # the name is never cut
    assert lines[0]["host"] == "n" * 64 and lines[1]["loss"] is None
    # The job log keeps every valid record whole, shortened for the network or not.
    assert [r["host"] for r in logged_records(logs[fits])] == [host, host]
    assert [r["npoints"] for r in logged_records(logs[too_long])] == [1, 2]
    assert logged_records(logs[too_long])[1]["dropped"] == 1  # the count travels on
    err = capsys.readouterr().err
    assert err.count("exceeds max_record_bytes (512) even shortened") == 1  # told once
    assert err.count("sent shortened") == 1 and "invalid metrics record" in err
    assert "2 not sent (too_large: 2)" in err  # the summary at close
    assert "2 metrics records sent, 2 shortened, 0 not sent" in err


def test_oversize_record_with_monitoring_off_is_logged_whole(workdir, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "off")
    log = workdir / "job.log"
    reporter = open_reporter("z" * 1024, 1, log, workdir)
    assert reporter.send(metrics()) is False  # nothing sent, nothing raised
    reporter.close()
    assert logged_records(log)[0]["name"] == "z" * 1024


# -- 15: a full disk ------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    """A real file system of `size` at `path` (root only; the test is skipped otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def authorized_push(workdir, port, context):
    keys = ensure_keys(workdir)
    sock = context.socket(zmq.PUSH)
    sock.linger = 0
    sock.sndhwm = 100_000
    sock.curve_publickey, sock.curve_secretkey = load_key_pair(keys.client_secret)
    sock.curve_serverkey = load_key_pair(keys.server_public)[0]
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def frame(i: int) -> bytes:
    record = {
        "v": 1,
        "name": f"full/disk~{i % 7}",
        "attempt": 1,
        "job_id": "1234567",
        "host": "node0042",
        "pid": 4000 + i,
        "t": time.time(),
        "elapsed": 12.5,
        "npoints": i,
        "loss": 0.001,
        "rate": 10.0,
        "cpu": 99.0,
        "rss_mb": 100.0,
        "status": "running",
        "interval": 30.0,
    }
    return json.dumps(record).encode()


def accounted(c: dict) -> bool:
    return c["received"] == c["stored"] + c["pending"] + sum(c["dropped"].values())


def test_full_disk_loses_no_record_uncounted_and_collector_recovers(workdir):
    sent = 400
    with small_tmpfs(workdir / "logs", "256k") as logs:
        filler = logs / "filler"
        with open(filler, "wb") as f:  # leave room for about 60 of the 400 records
            with contextlib.suppress(OSError):
                f.write(b"x" * (256 * 1024 - 20_000))
        settings = local_settings()
        collector = start_collector_process(workdir, settings)
        context = zmq.Context()
        try:
            sock = authorized_push(workdir, settings.port, context)
            for i in range(sent):
                sock.send(frame(i))
            full = wait_for(
                lambda: (c := counters(workdir)).get("received") == sent and c["pending"] and c,
                what="all received, some waiting for space",
            )
            assert accounted(full), full  # nothing vanishes while the disk is full
            assert 0 < full["stored"] < sent
            # status.json keeps being rewritten (it lives on another file system)
            first = read_json_or_none(status_file(workdir))["updated"]
            wait_for(
                lambda: read_json_or_none(status_file(workdir))["updated"] > first + 1,
                what="status.json updates while logs/ is full",
            )
            assert collector.poll() is None
            filler.unlink()  # space comes back: the collector catches up by itself
            done = wait_for(
                lambda: (c := counters(workdir)).get("stored") == sent and c, what="all stored"
            )
            assert done["pending"] == 0 and done["dropped"] == {}
        finally:
            context.destroy(linger=0)
            stop_process(collector)
        stored = [json.loads(line) for line in metrics_file(workdir).read_bytes().splitlines()]
    assert sorted(r["npoints"] for r in stored) == list(range(sent))  # each once, none torn
    print(
        f"\ndisk full: {sent} sent; while full {full['stored']} stored, "
        f"{full['pending']} waiting, {sum(full['dropped'].values())} dropped; "
        f"after space returned {done['stored']} stored, 0 dropped"
    )


def test_full_disk_for_good_counts_every_record_it_cannot_keep(tmp_path):
    """Queue bounded; records beyond it and those left at close are counted write_failed."""
    with small_tmpfs(tmp_path / "logs", "16k") as logs:
        store = MetricsFile(logs / "metrics.jsonl", rotate_bytes=10**9, keep=0)
        store.max_pending_bytes = 8_000
        line = frame(0) + b"\n"
        total = 500
        for _ in range(total):
            store.extend([line], len(line))
            with contextlib.suppress(OSError):
                store.flush()
        assert isinstance(store.error, OSError) and store.error.errno == 28  # ENOSPC
        assert store.stored + store.pending + store.write_failed == total
        assert 0 < store.pending * len(line) <= 8_000
        store.close()
        assert store.stored + store.write_failed == total and store.pending == 0
        on_disk = (logs / "metrics.jsonl").read_bytes()
        assert on_disk.count(b"\n") == store.stored and on_disk.endswith(b"\n")  # none torn
    print(
        f"\ndisk full for good: {total} records, {store.stored} stored, "
        f"{store.write_failed} counted write_failed"
    )


def test_file_size_limit_efbig_is_survived_and_counted(tmp_path):
    """RLIMIT_FSIZE: writes past it fail with EFBIG (and SIGXFSZ must not kill the writer)."""
    script = f"""
import resource, signal
from adaptive_snakemake.metrics.store import MetricsFile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
store = MetricsFile({str(tmp_path / "metrics.jsonl")!r}, rotate_bytes=10**9, keep=0)
line = b"y" * 299 + b"\\n"
errors = 0
for _ in range(100):
    store.extend([line], len(line))
    try:
        store.flush()
    except OSError as exc:
        errors += exc.errno == 27  # EFBIG
store.close()
print(store.stored, store.write_failed, errors)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    stored, failed, errors = map(int, result.stdout.split())
    assert stored == 20_000 // 300 and stored + failed == 100 and errors > 0
    assert (tmp_path / "metrics.jsonl").stat().st_size == stored * 300  # the torn line cut


def test_collector_survives_a_file_size_limit(workdir):
    """Under `ulimit -f` a write past the limit raises SIGXFSZ, which kills by default."""
    settings = local_settings()
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, ensure_keys(workdir)))
    os.environ.pop(ENV_VAR, None)
    limit = 20_000
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_snakemake.metrics.collector",
            "--workdir",
            str(workdir),
            "--settings",
            json.dumps(settings.to_dict()),
        ],
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    context = zmq.Context()
    try:
        wait_for(lambda: counters(workdir).get("pid") == collector.pid, what="collector")
        sock = authorized_push(workdir, settings.port, context)
        for i in range(200):
            sock.send(frame(i))
        last = wait_for(
            lambda: (c := counters(workdir)).get("received") == 200 and c["pending"] and c,
            what="records waiting past the file size limit",
        )
        assert collector.poll() is None, "killed by SIGXFSZ"
        assert accounted(last) and last["stored"] == metrics_file(workdir).read_bytes().count(b"\n")
    finally:
        context.destroy(linger=0)
        stop_process(collector)
    assert collector.returncode == 0
    final = counters(workdir)
    assert final["stored"] + final["dropped"]["write_failed"] == 200
    assert metrics_file(workdir).stat().st_size <= limit


def test_a_stop_signal_wakes_the_collector_at_once():
    """The signal makes the socket the collector polls readable, so it stops without waiting
    for its poll to time out (snakemake waits for it at the end of every run)."""
    import subprocess
    import sys

    code = """
import os, select, signal
from adaptive_snakemake.metrics.collector import wake_on_signals
signal.signal(signal.SIGTERM, lambda *a: None)
reader = wake_on_signals()
print(bool(select.select([reader], [], [], 0)[0]))
os.kill(os.getpid(), signal.SIGTERM)
print(bool(select.select([reader], [], [], 0)[0]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
