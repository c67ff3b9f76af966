"""How much the metrics collector takes, and what it costs.

1. Throughput: several sender processes push valid records as fast as the collector
   accepts them (blocking sends, so the collector sets the pace); we report the
   sustained rate of records validated, stored in logs/metrics.jsonl and folded into
   the latest state, read from the collector's own counters (status.json); with
   --rotate-mb small, logs/metrics.jsonl is rotated often and we report how often.
2. Load: N simulated jobs (default 10,000), each with its own CURVE connection,
   each sending one record a second, spread over a few processes; we report the
   collector process's CPU % (psutil) over a window.

The collector runs as in production: its own process, CURVE + ZAP on, status.json
rewritten every second. Run:  .venv/bin/python benchmarks/collector_throughput.py
"""

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from adaptive_snakemake.fileio import read_json_or_none
from adaptive_snakemake.layout import status_file
from adaptive_snakemake.metrics.address import MonitorAddress, publish_address
from adaptive_snakemake.metrics.keys import ensure_keys, load_key_pair
from adaptive_snakemake.metrics.record import encode_record
from adaptive_snakemake.metrics.service import stop_collector
from adaptive_snakemake.metrics.settings import MonitorSettings


def frame(name: str, i: int = 0) -> bytes:
    return encode_record(
        {
            "v": 1,
            "name": name,
            "attempt": 1,
            "job_id": "1234567",
            "host": "node0042",
            "pid": 40000 + i % 1000,
            "t": time.time(),
            "elapsed": 123.4,
            "npoints": 1000 + i,
            "loss": 0.00123,
            "rate": 12.5,
            "cpu": 198.2,
            "rss_mb": 512.3,
            "status": "running",
            "interval": 1.0,
        }
    )


def connect(context, workdir: Path, endpoint: str, curve: bool):
    sock = context.socket(zmq.PUSH)
    sock.linger = 0
    if curve:
        keys = ensure_keys(workdir)
        sock.curve_publickey, sock.curve_secretkey = load_key_pair(keys.client_secret)
        sock.curve_serverkey = load_key_pair(keys.server_public)[0]
    sock.connect(endpoint)
    return sock


def flood(workdir: str, endpoint: str, curve: bool, seconds: float, names: int, seed: int):
    """Send as fast as the collector takes it."""
    context = zmq.Context()
    sock = connect(context, Path(workdir), endpoint, curve)
    frames = [frame(f"bench/n~{seed}_{i}", i) for i in range(names)]
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        for f in frames:
            sock.send(f)
        sent += len(frames)
    sock.close()
    context.term()


def jobs(workdir: str, endpoint: str, curve: bool, first: int, count: int, seconds: float):
    """`count` jobs with one connection each, each sending once a second, evenly spread."""
    context = zmq.Context()
    context.MAX_SOCKETS = count + 100
    socks = [connect(context, Path(workdir), endpoint, curve) for _ in range(count)]
    frames = [frame(f"bench/job~{first + i}", first + i) for i in range(count)]
    slots = 100  # sends happen in 100 slices per second
    start = time.monotonic()
    tick = 0
    dropped = 0
    while time.monotonic() - start < seconds:
        lo, hi = (tick % slots) * count // slots, (tick % slots + 1) * count // slots
        for i in range(lo, hi):
            try:
                socks[i].send(frames[i], zmq.NOBLOCK)
            except zmq.Again:
                dropped += 1
        tick += 1
        pause = start + tick / slots - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    for s in socks:
        s.close()
    context.term()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: Path, curve: bool, rotate_mb: float = MonitorSettings.metrics_rotate_mb):
    settings = MonitorSettings(
        host="127.0.0.1",
        bind="127.0.0.1",
        port=free_port(),
        curve=curve,
        metrics_rotate_mb=rotate_mb,
    )
    keys = ensure_keys(workdir) if curve else None
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, keys))
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
        stderr=subprocess.DEVNULL,
    )
    while counters(workdir) is None:
        time.sleep(0.05)
    return process, f"tcp://127.0.0.1:{settings.port}"


def counters(workdir: Path):
    return (read_json_or_none(status_file(workdir)) or {}).get("collector")


def throughput(args, curve: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        collector, endpoint = start(workdir, curve, args.rotate_mb)
        spawn = multiprocessing.get_context("spawn")
        senders = [
            spawn.Process(
                target=flood,
                args=(tmp, endpoint, curve, args.seconds + 3, args.names, seed),
            )
            for seed in range(args.senders)
        ]
        for s in senders:
            s.start()
        time.sleep(2)  # connections up, steady state
        first, t0 = counters(workdir)["stored"], time.monotonic()
        time.sleep(args.seconds)
        last, t1 = counters(workdir)["stored"], time.monotonic()
        for s in senders:
            s.join()
        final = counters(workdir)
        collector.terminate()
        collector.wait()
        stop_collector(workdir)
        rate = (last - first) / (t1 - t0)
        dropped = sum(final["dropped"].values())
        files = sorted(p.stat().st_size for p in (workdir / "logs").glob("metrics.jsonl*"))
        print(
            f"throughput (curve={curve}): {rate:,.0f} records/s stored "
            f"({args.senders} senders, {args.names} learner names, {dropped} dropped; "
            f"metrics.jsonl rotated {final.get('metrics_files_rotated', 0)} times at "
            f"{args.rotate_mb:g} MB, largest file {files[-1] if files else 0:,} bytes)"
        )
        return rate


def load(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        collector, endpoint = start(workdir, True)
        spawn = multiprocessing.get_context("spawn")
        per = args.jobs // args.job_procs
        procs = [
            spawn.Process(
                target=jobs,
                args=(tmp, endpoint, True, k * per, per, args.warmup + args.window + 5),
            )
            for k in range(args.job_procs)
        ]
        for p in procs:
            p.start()
        time.sleep(args.warmup)
        watched = psutil.Process(collector.pid)
        c0 = counters(workdir)
        watched.cpu_percent(None)
        t0 = time.monotonic()
        time.sleep(args.window)
        cpu = watched.cpu_percent(None)
        c1 = counters(workdir)
        rate = (c1["stored"] - c0["stored"]) / (time.monotonic() - t0)
        learners = len(json.loads(status_file(workdir).read_text())["learners"])
        rss_mb = watched.memory_info().rss / 2**20
        for p in procs:
            p.join()
        collector.terminate()
        collector.wait()
        result = {"jobs": args.jobs, "learners_seen": learners, "records_per_s": rate}
        result.update(collector_cpu_percent=cpu, collector_rss_mb=rss_mb)
        print(
            f"load: {args.jobs:,} jobs x 1 record/s over {args.job_procs} processes: "
            f"collector CPU {cpu:.1f}% of one core, {rate:,.0f} records/s stored, "
            f"{learners:,} learners in status.json, RSS {rss_mb:.0f} MB"
        )
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--job-procs", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--window", type=float, default=20)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--rotate-mb",
        type=float,
        default=MonitorSettings.metrics_rotate_mb,
        help="monitor setting metrics_rotate_mb (default: %(default)s)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}")
    results = {}
    if not args.skip_throughput:
        results["throughput_curve"] = throughput(args, True)
        results["throughput_plain"] = throughput(args, False)
    if not args.skip_load:
        results["load"] = load(args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
