"""Inside a learner job: send one metrics record per log interval, never blocking.

Each record is appended to the learner's log as a JSON line (so metrics survive
without a collector) and pushed to the collector over ZeroMQ. The socket is set
up so that a dead or absent collector costs nothing: a small send queue, NOBLOCK
sends (a full queue drops the record and counts it), linger 0 while running, and
on close at most CLOSE_LINGER_MS for the last records to leave (the final "done"
record is usually still queued when the job ends; a dead collector costs that
much). A PUSH socket reconnects by itself when the collector comes back.
"""

import math
import os
import socket
import sys
import time
from pathlib import Path

import psutil
import zmq

from adaptive_snakemake.fileio import append_line
from adaptive_snakemake.metrics.address import MonitorAddress, find_address, resolve_key_path
from adaptive_snakemake.metrics.keys import load_key_pair
from adaptive_snakemake.metrics.record import VERSION, check_record, encode_record
from adaptive_snakemake.processes import batch_job_id

SEND_HWM = 16  # records queued while the collector is away; older ones are lost anyway
RECONNECT_MAX_MS = 5000  # thousands of jobs must not hammer a collector that is down
HEARTBEAT_MS = 10000  # notice a half-open connection (collector host gone) and reconnect
USAGE_MIN_INTERVAL_S = 1.0
CLOSE_LINGER_MS = 500


class Reporter:
    """Sends records for one learner attempt; see `open_reporter`."""

    def __init__(
        self,
        name: str,
        attempt: int,
        log_file: Path | None,
        address: MonitorAddress,
        workdir: Path | None = None,
        log_interval: float | None = None,
    ):
        self.name = name
        self.attempt = attempt
        self.log_file = Path(log_file) if log_file is not None else None
        self.max_record_bytes = address.max_record_bytes
        self.log_interval = log_interval
        self.dropped = 0
        self.sent = 0
        self._fixed = {
            "v": VERSION,
            "name": name,
            "attempt": attempt,
            "job_id": (batch_job_id() or "local")[:128],
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
        }
        self._process = psutil.Process()
        self._processes: dict[int, psutil.Process] = {}
        self._usage_cache = (-math.inf, 0.0, 0.0)
        self._log_error_shown = False
        if self.log_file is not None:
            try:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # reported by the first append
        self._context = None
        self._socket = None
        self._owner_pid = os.getpid()
        if address.enabled:
            try:
                self._connect(address, workdir)
            except Exception as exc:  # the learner must run on without a collector
                print(f"adaptive-snakemake: metrics not streamed ({exc})", file=sys.stderr)
                self._close_socket()

    def _connect(self, address: MonitorAddress, workdir: Path | None) -> None:
        self._context = zmq.Context(io_threads=1)
        self._context.setsockopt(zmq.LINGER, 0)
        sock = self._context.socket(zmq.PUSH)
        self._socket = sock
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)
        if address.curve:
            client_public, client_secret = load_key_pair(
                resolve_key_path(address.client_secret_key, workdir)
            )
            server_public, _ = load_key_pair(resolve_key_path(address.server_public_key, workdir))
            if client_secret is None:
                raise ValueError("client key file holds no secret key")
            sock.curve_publickey = client_public
            sock.curve_secretkey = client_secret
            sock.curve_serverkey = server_public
        sock.connect(address.endpoint)

    def _usage(self) -> tuple[float, float]:
        """CPU % and resident MB of this process and all its descendants (MPI ranks, workers).

        Sampled at most once a second: listing descendants scans /proc.
        """
        now = time.monotonic()
        if now - self._usage_cache[0] < USAGE_MIN_INTERVAL_S:
            return self._usage_cache[1:]
        try:
            processes = [self._process, *self._process.children(recursive=True)]
        except psutil.Error:
            processes = [self._process]
        cpu = rss = 0.0
        alive = {}
        for process in processes:
            # Reuse Process objects: cpu_percent measures since the previous call on the object.
            process = self._processes.get(process.pid, process)
            try:
                cpu += process.cpu_percent(None)
                rss += process.memory_info().rss
            except psutil.Error:
                continue
            alive[process.pid] = process
        self._processes = alive
        self._usage_cache = (now, round(cpu, 1), round(rss / 2**20, 1))
        return self._usage_cache[1:]

    def send(self, fields: dict) -> bool:
        """Log and send one record built from `fields`; True if ZeroMQ accepted it.

        Raises ValueError only for an invalid record (a bug in the caller).
        """
        cpu, rss_mb = self._usage()
        record = {**self._fixed, "t": time.time(), "cpu": cpu, "rss_mb": rss_mb}
        record.update(fields)
        for key, value in record.items():
            if type(value) is float and not math.isfinite(value):
                record[key] = None  # e.g. adaptive's loss is inf before any point
        if self.dropped:
            record["dropped"] = self.dropped
        if self.log_interval is not None:
            record["interval"] = float(self.log_interval)
        check_record(record)
        frame = encode_record(record)
        if len(frame) > self.max_record_bytes:
            raise ValueError(
                f"metrics record of {len(frame)} bytes exceeds {self.max_record_bytes}"
            )
        self._append_log(frame)
        if self._socket is None:
            return False
        try:
            self._socket.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:  # queue full (collector away) or socket unusable
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def _append_log(self, frame: bytes) -> None:
        if self.log_file is None:
            return
        try:
            append_line(self.log_file, frame)  # one write: the job's output shares the file
        except OSError as exc:
            if self._log_error_shown:
                return
            self._log_error_shown = True
            print(
                f"adaptive-snakemake: cannot append metrics to {self.log_file}: {exc}",
                file=sys.stderr,
            )

    def _close_socket(self) -> None:
        if self._owner_pid != os.getpid():  # a forked child must not touch the parent's sockets
            self._socket = self._context = None
            return
        if self._socket is not None:
            self._socket.close(linger=CLOSE_LINGER_MS)
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def close(self) -> None:
        """Release the socket; queued records get at most CLOSE_LINGER_MS to leave."""
        self._close_socket()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def open_reporter(
    name: str,
    attempt: int,
    log_file: Path | None,
    workdir: Path = Path("."),
    log_interval: float | None = None,
) -> Reporter:
    """A reporter for one attempt of learner `name`.

    Never raises because the collector is unreachable, unpublished or disabled: then
    records go to `log_file` only. `log_interval` (seconds), if given, travels in each
    record so the collector can tell when this job has gone silent.
    """
    return Reporter(name, attempt, log_file, find_address(workdir), workdir, log_interval)
