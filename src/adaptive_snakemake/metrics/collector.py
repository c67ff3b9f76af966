"""The collector: one process beside the workflow that receives every job's records.

    python -m adaptive_snakemake.metrics.collector --workdir DIR --parent-pid PID --settings JSON

It binds a ZeroMQ PULL socket (CURVE + a ZAP allow-list of client keys by default),
appends every valid record to logs/metrics.jsonl (rotated by size, see `store`), and
rewrites .adaptive-snakemake/status.json (latest state per learner) every second.
Anything that is not a valid record is dropped and counted; nothing is ever unpickled.
Every record received is stored, waiting to be written ("pending"), or counted as
dropped by reason: received == stored + pending + sum(dropped). A failing disk (full,
quota, I/O error) never stops it: records wait in a bounded queue and writes of the
file and of status.json are retried every `status_interval` until they work again. It
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
import socket
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
from adaptive_snakemake.metrics.store import FLUSH_BYTES, MetricsFile
from adaptive_snakemake.processes import find_process, is_alive

log = logging.getLogger("adaptive_snakemake.collector")

MAX_FRAME_BYTES = 1 << 16  # ZeroMQ disconnects a peer sending more: bounds memory per frame
DRAIN_BATCH = 5000  # frames handled between housekeeping checks
PARENT_CHECK_S = 0.5
STATUS_IDLE_REWRITE_S = 3.0  # status.json "updated" shows the collector alive (status: < 10 s)
# Why a received record is not stored; status.json lists the reasons that occurred.
DROP_REASONS = ("too_large", "not_json", "invalid", "multipart", "write_failed")


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
        self.dropped = dict.fromkeys(DROP_REASONS, 0)  # "write_failed" lives in self.metrics
        self.metrics = MetricsFile(
            layout.metrics_file(self.workdir),
            rotate_bytes=int(settings.metrics_rotate_mb * 1e6),
            keep=settings.metrics_keep,
        )
        self.started = time.time()
        self.stopping = False
        self.wakeup = None  # a socket that a stop signal makes readable (main: wake_on_signals)
        self._last_error_report = -1e9
        self._counts_at_status = None
        self._status_due = 0.0
        self._lock_fd = None
        self._context = None
        self._auth = None
        self._socket = None

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Take the workflow's collector lock, open the files and bind the socket."""
        self._lock_fd = take_lock(layout.pid_file(self.workdir))
        try:
            self.metrics.open()
        except OSError as exc:  # e.g. a full disk: records wait, opening is retried
            self._report_error(exc)
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
        try:
            self.write_status()
        except OSError as exc:
            self._report_error(exc)
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

    @property
    def stored(self) -> int:
        return self.metrics.stored

    def close(self) -> None:
        if self._lock_fd is not None:  # never touch the files of another collector
            self.metrics.close()  # what cannot be written now is counted as write_failed
            with contextlib.suppress(OSError):
                self.write_status()
        if self._socket is not None:
            self._socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._context is not None:
            self._context.destroy(linger=0)  # closes any socket left open; never waits
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
        self._socket = self._auth = self._context = self._lock_fd = None

    # -- serving ----------------------------------------------------------------------------

    def serve(self) -> None:
        """Receive until stopped (SIGTERM/SIGINT via `stopping`) or the parent is gone."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        if self.wakeup is not None:
            poller.register(self.wakeup, zmq.POLLIN)
        next_status = time.monotonic() + self.settings.status_interval
        next_parent_check = time.monotonic() + PARENT_CHECK_S
        while not self.stopping:
            timeout = max(0.0, min(next_status, next_parent_check) - time.monotonic())
            ready = dict(poller.poll(timeout * 1000))
            if self._socket in ready:
                try:
                    self.drain()
                except OSError as exc:  # e.g. a full disk: keep serving the latest state
                    self._report_error(exc)
            if self.wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    self.wakeup.recv(4096)
            now = time.monotonic()
            if now >= next_parent_check:
                next_parent_check = now + PARENT_CHECK_S
                if not self.parent_alive():
                    log.info("parent process %s is gone; stopping", self.parent_pid)
                    break
            if now >= next_status:
                next_status = now + self.settings.status_interval
                self.housekeeping(now)

    def housekeeping(self, now: float) -> None:
        """Write queued records and status.json; a failure of one never skips the other."""
        try:
            self.metrics.flush()  # also retries after a failed write
        except OSError as exc:
            self._report_error(exc)
        # Unchanged state is rewritten only now and then: 10,000 learners make a
        # status.json of some MB, often on a shared file system.
        if self._counts() != self._counts_at_status or now >= self._status_due:
            try:
                self.write_status()
            except OSError as exc:
                self._report_error(exc)

    def _counts(self) -> tuple:
        return (self.received, self.metrics.stored, self.metrics.write_failed)

    def _report_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_report > 60:
            self._last_error_report = now
            log.error(
                "%s; retrying every %g s, %d records waiting, %d lost so far "
                "(further errors in the next minute are not logged)",
                exc,
                self.settings.status_interval,
                self.metrics.pending,
                self.metrics.write_failed,
            )

    def drain(self) -> None:
        """Handle the frames waiting now (at most DRAIN_BATCH). The hot loop of the collector."""
        recv = self._socket.recv
        update = self.state.update
        max_bytes = self.settings.max_record_bytes
        dropped = self.dropped
        now = time.time()
        received = nbytes = 0
        lines = []
        store = lines.append
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
                store(frame + b"\n")
                nbytes += len(frame) + 1
                update(record, frame, now)
        finally:
            self.received += received
            self.metrics.extend(lines, nbytes)
        # After a failed write, only housekeeping retries (once per status_interval).
        if self.metrics.pending_bytes >= FLUSH_BYTES and self.metrics.error is None:
            self.metrics.flush()

    def parent_alive(self) -> bool:
        return self.parent_pid is None or is_alive(self.parent)

    def counters(self) -> dict:
        return {
            "pid": os.getpid(),
            "endpoint": self.endpoint,
            "curve": self.settings.curve,
            "started": self.started,
            "received": self.received,
            "stored": self.metrics.stored,
            "pending": self.metrics.pending,  # valid records waiting to be written
            "dropped": {reason: n for reason, n in self.dropped_by_reason().items() if n},
            "metrics_files_rotated": self.metrics.rotations,
        }

    def dropped_by_reason(self) -> dict:
        return {**self.dropped, "write_failed": self.metrics.write_failed}

    def write_status(self) -> None:
        counts = self._counts()
        atomic_write_bytes(layout.status_file(self.workdir), self.state.snapshot(self.counters()))
        self._counts_at_status = counts
        self._status_due = time.monotonic() + STATUS_IDLE_REWRITE_S


def _raise_fd_limit() -> None:
    """Each connected job holds a TCP connection; allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_signal_writer: socket.socket | None = None


def wake_on_signals() -> socket.socket:
    """A socket that becomes readable when a signal arrives. A handler alone runs only when
    the poll returns (pyzmq resumes it after EINTR), up to PARENT_CHECK_S later: snakemake,
    which waits for the collector to exit at the end of every run, would wait that long."""
    global _signal_writer
    reader, _signal_writer = socket.socketpair()  # the writer: process-wide, as the wakeup fd
    reader.setblocking(False)
    _signal_writer.setblocking(False)
    signal.set_wakeup_fd(_signal_writer.fileno(), warn_on_full_buffer=False)
    return reader


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
    collector.wakeup = wake_on_signals()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Past a file size limit (ulimit -f), a write must fail with EFBIG (counted, retried),
    # not kill the collector.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
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
            collector.dropped_by_reason(),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
