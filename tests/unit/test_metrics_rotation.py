"""logs/metrics.jsonl stays bounded, and load_metrics reads within bounds (issue 10: 16)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import pandas as pd
import pytest
import zmq

from adaptive_snakemake import load_metrics, status
from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.fileio import read_json_or_none
from adaptive_snakemake.layout import metrics_file, status_file
from adaptive_snakemake.metrics import history
from adaptive_snakemake.metrics.address import ENV_VAR, MonitorAddress, publish_address
from adaptive_snakemake.metrics.keys import ensure_keys, load_key_pair
from adaptive_snakemake.metrics.pidfile import running_collector
from adaptive_snakemake.metrics.record import encode_record
from adaptive_snakemake.metrics.service import stop_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.store import MetricsFile, metrics_files, rotated_path

pytestmark = pytest.mark.timeout(120)


def record(name, t, **changes):
    values = {
        "v": 1,
        "name": name,
        "attempt": 1,
        "job_id": "7",
        "host": "node1",
        "pid": 11,
        "t": t,
        "elapsed": 5.0,
        "npoints": 50,
        "loss": 0.1,
        "rate": 10.0,
        "cpu": 95.0,
        "rss_mb": 100.0,
        "status": "running",
        "interval": 10.0,
    }
    values.update(changes)
    return values


def line(name, t, **changes) -> bytes:
    return encode_record(record(name, t, **changes)) + b"\n"


def write(store: MetricsFile, lines) -> None:
    lines = list(lines)
    store.extend(lines, sum(map(len, lines)))
    store.flush()


def npoints_in(path) -> list[int]:
    return [json.loads(x)["npoints"] for x in path.read_bytes().splitlines()]


# -- the store --------------------------------------------------------------------------------


def test_rotation_bounds_every_file_and_keeps_whole_records_in_order(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    store = MetricsFile(path, rotate_bytes=10_000, keep=3)
    size = len(line("a", 1.0, npoints=1000))
    for chunk in range(40):  # 40 flushes of 25 records: 1,000 records, ~300 kB
        write(store, (line("a", 1.0, npoints=1000 + 25 * chunk + i) for i in range(25)))
    files = metrics_files(path)
    assert files == [rotated_path(path, i) for i in (3, 2, 1)] + [path]
    assert not rotated_path(path, 4).exists()
    sizes = [p.stat().st_size for p in files]
    assert all(s <= 10_000 for s in sizes) and all(s > 10_000 - size for s in sizes[:-1])
    kept = [n for p in files for n in npoints_in(p)]
    assert kept == list(range(kept[0], 2000))  # the newest records, contiguous, none torn
    assert store.stored == 1000 and store.rotations >= 19
    # A smaller `keep` removes the files beyond it at the next rotation.
    store = MetricsFile(path, rotate_bytes=10_000, keep=1)
    write(store, [line("a", 1.0, npoints=2000)] * 120)
    assert metrics_files(path) == [rotated_path(path, 1), path]
    store.close()
    print(f"\nrotation: 1,000 records at rotate_bytes=10,000 keep=3: file sizes {sizes}")


def test_oversized_existing_file_is_rotated_first_and_keep_zero_deletes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(line("old", 1.0) * 1000)  # e.g. written before rotation existed
    store = MetricsFile(path, rotate_bytes=5_000, keep=0)
    write(store, [line("new", 2.0)])
    assert metrics_files(path) == [path] and path.read_bytes() == line("new", 2.0)


def test_torn_end_and_file_moved_away_by_hand(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(line("a", 1.0) + b'{"v": 1, "na')  # a writer killed mid-line
    store = MetricsFile(path, rotate_bytes=10**9, keep=2)
    write(store, [line("b", 2.0)])
    assert path.read_bytes().splitlines()[-1] == line("b", 2.0)[:-1]
    os.rename(path, tmp_path / "aside.jsonl")
    write(store, [line("c", 3.0)])
    assert path.read_bytes() == line("c", 3.0)  # a new file, not the one moved away


def test_settings_for_rotation_are_checked():
    settings = MonitorSettings.from_config({"metrics_rotate_mb": 0.5, "metrics_keep": 0})
    assert settings.metrics_rotate_mb == 0.5 and settings.metrics_keep == 0
    assert MonitorSettings().metrics_rotate_mb == 100 and MonitorSettings().metrics_keep == 5
    for section, key in (
        ({"metrics_rotate_mb": 0}, "metrics_rotate_mb"),
        ({"metrics_keep": -1}, "metrics_keep"),
    ):
        with pytest.raises(ConfigError, match=key):
            MonitorSettings.from_config(section)


# -- the collector rotates; status and load_metrics read across files --------------------------


def test_collector_rotates_and_status_and_load_metrics_keep_working(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = MonitorSettings(
        host="127.0.0.1",
        bind="127.0.0.1",
        port=port,
        status_interval=0.1,
        metrics_rotate_mb=0.01,  # 10 kB
        metrics_keep=2,
    )
    keys = ensure_keys(tmp_path)
    publish_address(tmp_path, MonitorAddress.for_workflow(tmp_path, settings, keys))
    os.environ.pop(ENV_VAR, None)
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptive_snakemake.metrics.collector",
            "--workdir",
            str(tmp_path),
            "--settings",
            json.dumps(settings.to_dict()),
        ],
        stderr=subprocess.DEVNULL,
    )
    context = zmq.Context()
    sent = 300
    t0 = time.time() - sent
    try:

        def counters():
            return (read_json_or_none(status_file(tmp_path)) or {}).get("collector") or {}

        deadline = time.monotonic() + 15
        while not (running_collector(tmp_path) and counters().get("pid") == collector.pid):
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.05)
        sock = context.socket(zmq.PUSH)
        sock.linger = 0
        sock.curve_publickey, sock.curve_secretkey = load_key_pair(keys.client_secret)
        sock.curve_serverkey = load_key_pair(keys.server_public)[0]
        sock.connect(f"tcp://127.0.0.1:{port}")
        for i in range(sent):
            sock.send(encode_record(record(f"s/x~{i % 3}", t0 + i, npoints=i)))
        while counters().get("stored") != sent:
            assert time.monotonic() < deadline + 15, counters()
            time.sleep(0.05)
        assert counters()["metrics_files_rotated"] > 0
        table = status(tmp_path).set_index("name")  # reads status.json: rotation is invisible
        assert list(table["npoints"]) == [297, 298, 299]
    finally:
        context.destroy(linger=0)
        collector.send_signal(signal.SIGTERM)
        collector.wait(10)
        stop_collector(tmp_path)
    files = metrics_files(metrics_file(tmp_path))
    assert [p.name for p in files] == ["metrics.jsonl.2", "metrics.jsonl.1", "metrics.jsonl"]
    assert all(p.stat().st_size <= 10_000 for p in files)
    kept = [n for p in files for n in npoints_in(p)]
    assert kept == list(range(sent - len(kept), sent))
    frame = load_metrics(tmp_path)  # all files, oldest first
    assert list(frame["npoints"]) == kept
    with pytest.warns(UserWarning, match="only the newest 5 matching records"):
        assert list(load_metrics(tmp_path, max_rows=5)["npoints"]) == [295, 296, 297, 298, 299]
    by_name = load_metrics(tmp_path, names="s/x~1")
    assert set(by_name["name"]) == {"s/x~1"} and len(by_name) == len(kept) // 3
    since = load_metrics(tmp_path, since=t0 + 290, until=t0 + 295.5)
    assert list(since["npoints"]) == [290, 291, 292, 293, 294, 295]
    print(f"\ncollector rotation at 10 kB, keep 2: {[p.stat().st_size for p in files]} bytes")


# -- load_metrics is bounded --------------------------------------------------------------------


def write_history(tmp_path, files=4, per_file=20_000):
    """`files` metrics files, oldest first, of `per_file` records each, 3 sweeps."""
    path = metrics_file(tmp_path)
    path.parent.mkdir(parents=True)
    i = 0
    for index in range(files, -1, -1):
        target = path if index == 0 else rotated_path(path, index)
        chunks = []
        for _ in range(per_file):
            name = f"sweep{i % 3}/p~{i % 10}"
            chunks.append(line(name, 1_000_000.0 + i, npoints=i))
            i += 1
        target.write_bytes(b"".join(chunks))
    return i


def test_load_metrics_reads_only_what_it_returns(tmp_path, monkeypatch):
    total = write_history(tmp_path)
    opened = []
    original = history._matching
    monkeypatch.setattr(
        history,
        "_matching",
        lambda path, wanted: (opened.append(path.name), original(path, wanted))[1],
    )
    tracemalloc.start()
    with pytest.warns(UserWarning, match="only the newest 1,000"):
        frame = load_metrics(tmp_path, max_rows=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert list(frame["npoints"]) == list(range(total - 1000, total))
    assert frame.attrs["truncated"] is True
    assert opened == ["metrics.jsonl"]  # rotated files are not even opened
    assert peak < 20 * 2**20, f"{peak / 2**20:.1f} MB"
    # since: older files are skipped by their last record alone
    opened.clear()
    recent = load_metrics(tmp_path, since=1_000_000.0 + total - 30_000, max_rows=None)
    assert len(recent) == 30_000 and opened == ["metrics.jsonl", "metrics.jsonl.1"]
    assert not recent.attrs["truncated"]
    # by sweep and name, across all files, the default limit
    sweep = load_metrics(tmp_path, sweep="sweep1")
    assert len(sweep) == total // 3 and set(sweep["name"].str[:6]) == {"sweep1"}
    one = load_metrics(tmp_path, names=["sweep2/p~5"], since=pd.Timestamp(1_000_000, unit="s"))
    assert len(one) == len(range(5, total, 30)) and one["t"].is_monotonic_increasing
    assert load_metrics(tmp_path, since=pd.Timedelta("1h")).empty  # the history is from 1970
    with pytest.raises(TypeError, match="names"):
        load_metrics(tmp_path, names=[1])


def test_load_metrics_from_job_logs_reads_only_the_wanted_logs(tmp_path, monkeypatch):
    logs = tmp_path / "logs" / "learners"
    for name in ("a", "b/p~1", "b/p~2", "c/q~1"):
        path = logs / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"job output\n" + b"".join(line(name, float(t)) for t in range(5)))
    opened = []
    original = history._matching
    monkeypatch.setattr(
        history, "_matching", lambda path, wanted: (opened.append(path), original(path, wanted))[1]
    )
    with pytest.warns(UserWarning):
        frame = load_metrics(tmp_path, sweep="b", names="a", max_rows=7)
    assert sorted(p.relative_to(logs).as_posix() for p in opened) == [
        "a.log",
        "b/p~1.log",
        "b/p~2.log",
    ]
    assert len(frame) == 7 and frame["t"].is_monotonic_increasing and frame.attrs["truncated"]
    assert set(load_metrics(tmp_path, source="logs")["name"]) == {"a", "b/p~1", "b/p~2", "c/q~1"}
