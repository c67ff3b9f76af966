"""The collector: one process beside the workflow that receives every job's records.

    python -m adaptive_snakemake.metrics.collector --workdir DIR --parent-pid PID --settings JSON

It binds a ZeroMQ PULL socket (CURVE + a ZAP allow-list of client keys by default),
appends every valid record to logs/metrics.jsonl, and rewrites
.adaptive-snakemake/status.json (latest state per learner) every second. Anything
that is not a valid record is dropped and counted; nothing is ever unpickled. It
exits on SIGTERM/SIGINT or as soon as its parent (snakemake) is gone, even after
`kill -9`. One collector per workflow: it holds a lock on .adaptive-snakemake/collector.pid.

Started and stopped by `adaptive_snakemake.metrics.service`, which the workflow's
onstart/onsuccess/onerror handlers (workflow/rules/monitor.smk) call.
"""

import argparse
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from adaptive_snakemake import layout
from adaptive_snakemake.fileio import atomic_write_bytes
from adaptive_snakemake.metrics.address import bind_endpoint
from adaptive_snakemake.metrics.keys import KeyFiles, ensure_keys, load_key_pair
from adaptive_snakemake.metrics.pidfile import CollectorRunning, take_lock, write_info
from adaptive_snakemake.metrics.record import RecordError, encode_record, parse_record
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.metrics.state import LatestState
from adaptive_snakemake.processes import find_process, is_alive

log = logging.getLogger("adaptive_snakemake.collector")

MAX_FRAME_BYTES = 1 << 16  # ZeroMQ disconnects a peer sending more: bounds memory per frame
DRAIN_BATCH = 5000  # frames handled between housekeeping checks
PARENT_CHECK_S = 0.5
STATUS_IDLE_REWRITE_S = 3.0  # status.json "updated" shows the collector alive (status: < 10 s)
DROP_REASONS = ("too_large", "not_json", "invalid", "multipart")


class Collector:
    """Receives, validates and stores records; see the module docstring."""

    def __init__(self, workdir: str | os.PathLike, settings: MonitorSettings, parent_pid=None):
        self.workdir = Path(workdir).resolve()
        self.settings = settings
        self.parent = find_process(parent_pid)  # None if given and already gone
        self.parent_pid = parent_pid
        self.endpoint = bind_endpoint(self.workdir, settings)
        self.state = LatestState(settings.log_interval, settings.stale_intervals)
        self.received = 0
        self.stored = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.started = time.time()
        self.stopping = False
        self._last_error_report = -1e9
        self._received_at_status = -1
        self._status_due = 0.0
        self._lock_fd = None
        self._context = None
        self._auth = None
        self._socket = None
        self._metrics = None

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Take the workflow's collector lock, open the files and bind the socket."""
        self._lock_fd = take_lock(layout.pid_file(self.workdir))
        metrics_path = layout.metrics_file(self.workdir)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self._metrics = open(metrics_path, "ab", buffering=1 << 16)  # noqa: SIM115
        _raise_fd_limit()
        self._context = zmq.Context()
        self._context.setsockopt(zmq.LINGER, 0)
        sock = self._socket = self._context.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        sock.setsockopt(zmq.BACKLOG, 1024)  # thousands of jobs may (re)connect at once
        if self.settings.curve:
            keys = ensure_keys(self.workdir)
            self._start_authenticator(keys)
            public, secret = load_key_pair(keys.server_secret)
            sock.curve_server = True
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.bind(self.endpoint)
        info = {
            "pid": os.getpid(),
            "parent_pid": self.parent_pid,
            "endpoint": self.endpoint,
            "started": self.started,
        }
        write_info(self._lock_fd, info)
        self.write_status()
        log.info(
            "collector %d listening on %s (curve=%s)",
            os.getpid(),
            self.endpoint,
            self.settings.curve,
        )

    def _start_authenticator(self, keys: KeyFiles) -> None:
        self._auth = ThreadAuthenticator(
            self._context, log=logging.getLogger("adaptive_snakemake.zap")
        )
        self._auth.start()
        # Only clients whose public key is in the allow-list directory may connect.
        self._auth.configure_curve(domain="*", location=str(keys.allowed_clients))

    def close(self) -> None:
        if self._metrics is not None:
            with contextlib.suppress(OSError):
                self._metrics.flush()
        if self._lock_fd is not None:  # never overwrite the status of another collector
            with contextlib.suppress(OSError):
                self.write_status()
        if self._socket is not None:
            self._socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._context is not None:
            self._context.destroy(linger=0)  # closes any socket left open; never waits
        if self._metrics is not None:
            self._metrics.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
        self._socket = self._auth = self._context = self._metrics = self._lock_fd = None

    # -- serving ----------------------------------------------------------------------------

    def serve(self) -> None:
        """Receive until stopped (SIGTERM/SIGINT via `stopping`) or the parent is gone."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        next_status = time.monotonic() + self.settings.status_interval
        next_parent_check = time.monotonic() + PARENT_CHECK_S
        while not self.stopping:
            timeout = max(0.0, min(next_status, next_parent_check) - time.monotonic())
            if poller.poll(timeout * 1000):
                try:
                    self.drain()
                except OSError as exc:  # e.g. a full disk: keep serving the latest state
                    self._report_error(exc)
            now = time.monotonic()
            if now >= next_parent_check:
                next_parent_check = now + PARENT_CHECK_S
                if not self.parent_alive():
                    log.info("parent process %s is gone; stopping", self.parent_pid)
                    break
            if now >= next_status:
                next_status = now + self.settings.status_interval
                try:
                    self._metrics.flush()
                    # Unchanged state is rewritten only now and then: 10,000 learners make
                    # a status.json of some MB, often on a shared file system.
                    if self.received != self._received_at_status or now >= self._status_due:
                        self.write_status()
                except OSError as exc:
                    self._report_error(exc)

    def _report_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_report > 60:
            self._last_error_report = now
            log.error("%s (further errors in the next minute are not logged)", exc)

    def drain(self) -> None:
        """Handle the frames waiting now (at most DRAIN_BATCH). The hot loop of the collector."""
        recv = self._socket.recv
        write = self._metrics.write
        update = self.state.update
        max_bytes = self.settings.max_record_bytes
        dropped = self.dropped
        now = time.time()
        received = stored = 0
        try:
            for _ in range(DRAIN_BATCH):
                try:
                    message = recv(zmq.NOBLOCK, copy=False)  # a Frame knows `more`, cheaply
                except zmq.Again:
                    break
                received += 1
                if message.more:
                    while recv(copy=False).more:
                        pass
                    dropped["multipart"] += 1
                    continue
                frame = message.bytes
                try:
                    record = parse_record(frame, max_bytes)
                except RecordError as exc:
                    dropped[exc.reason] += 1
                    continue
                if b"\n" in frame or b"\r" in frame:  # keep one record per line
                    frame = encode_record(record)
                write(frame + b"\n")
                update(record, frame, now)
                stored += 1
        finally:
            self.received += received
            self.stored += stored

    def parent_alive(self) -> bool:
        return self.parent_pid is None or is_alive(self.parent)

    def counters(self) -> dict:
        return {
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "curve": self.settings.curve,
            "started": self.started,
            "received": self.received,
            "stored": self.stored,
            "dropped": dict(self.dropped),
        }

    def write_status(self) -> None:
        atomic_write_bytes(layout.status_file(self.workdir), self.state.snapshot(self.counters()))
        self._received_at_status = self.received
        self._status_due = time.monotonic() + STATUS_IDLE_REWRITE_S


def _raise_fd_limit() -> None:
    """Each connected job holds a TCP connection; allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adaptive_snakemake.metrics.collector")
    parser.add_argument("--workdir", default=".", help="workflow directory (default: .)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--settings", help="monitor settings as JSON (default: the defaults)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    settings = MonitorSettings.from_config(
        json.loads(args.settings) if args.settings else None, where="--settings"
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s collector %(process)d %(levelname)s %(message)s"
    )
    collector = Collector(workdir, settings, args.parent_pid)

    def stop(signum, frame):
        collector.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        collector.open()
    except CollectorRunning as exc:
        log.info("%s; nothing to do", exc)
        collector.close()
        return 0
    except zmq.ZMQError as exc:
        log.error("cannot listen on %s: %s", collector.endpoint, exc)
        collector.close()
        return 1
    try:
        collector.serve()
    finally:
        collector.close()
        log.info(
            "collector stopped: %d received, %d stored, dropped %s",
            collector.received,
            collector.stored,
            collector.dropped,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
