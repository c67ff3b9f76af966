"""Inside a learner job: send one metrics record per log interval, never blocking.

Each record is appended to the learner's log as a JSON line (so metrics survive
without a collector) and pushed to the collector over ZeroMQ. The socket is set
up so that a dead or absent collector costs nothing: a small send queue, NOBLOCK
sends (a full queue drops the record and counts it), linger 0 while running, and
on close at most CLOSE_LINGER_MS for the last records to leave (the final "done"
record is usually still queued when the job ends; a dead collector costs that
much). A PUSH socket reconnects by itself when the collector comes back.

Metrics never fail or stop the learner: `send` does not raise. A record larger than the
collector's `max_record_bytes` is shortened to fit (UTF-8 instead of \\u escapes, host
cut to its first label, job id cut, optional fields left out; never the name); one that
still does not fit, or that is invalid, is not sent. The job log always gets the full
record if it is valid. Every record not sent is counted by reason (`dropped_by_reason`);
the total travels in the next records ("dropped"), and the first problem of each kind and
a summary at close are written to stderr (the job log).
"""

import math
import numbers
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
from adaptive_snakemake.metrics.record import OPTIONAL, VERSION, encode_record, record_problem
from adaptive_snakemake.processes import batch_job_id

SEND_HWM = 16  # records queued while the collector is away; older ones are lost anyway
RECONNECT_MAX_MS = 5000  # thousands of jobs must not hammer a collector that is down
HEARTBEAT_MS = 10000  # notice a half-open connection (collector host gone) and reconnect
USAGE_MIN_INTERVAL_S = 1.0
CLOSE_LINGER_MS = 500
SHORT_HOST_CHARS = 64  # a host or job id cut to fit max_record_bytes keeps this many
SHORT_JOB_ID_CHARS = 32
DROP_REASONS = ("queue_full", "too_large", "invalid")


class _JobUsage:
    """CPU % and resident MB of this process and all its descendants (MPI ranks, workers),
    sampled at most once a second: listing descendants scans /proc. One per process, shared
    by all its reporters: a pack's learners run in one process, whose usage they all report
    (measured: 4 ms per sample, paid by every learner of a pack at its start)."""

    def __init__(self):
        self.pid = os.getpid()
        self._process = psutil.Process()
        self._processes: dict[int, psutil.Process] = {}
        self._cache = (-math.inf, 0.0, 0.0)

    def sample(self) -> tuple[float, float]:
        now = time.monotonic()
        if now - self._cache[0] < USAGE_MIN_INTERVAL_S:
            return self._cache[1:]
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
        self._cache = (now, round(cpu, 1), round(rss / 2**20, 1))
        return self._cache[1:]


_usage: _JobUsage | None = None


def _job_usage() -> _JobUsage:
    global _usage
    if _usage is None or _usage.pid != os.getpid():  # (a forked child measures itself)
        _usage = _JobUsage()
    return _usage


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
        self.dropped = 0  # records not sent, all reasons: the record's "dropped" field
        self.dropped_by_reason = dict.fromkeys(DROP_REASONS, 0)
        self.truncated = 0  # records sent shortened to fit max_record_bytes
        self.sent = 0
        self._warned: set[str] = set()
        self._fixed = {
            "v": VERSION,
            "name": name,
            "attempt": attempt,
            "job_id": (batch_job_id() or "local")[:128],
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
        }
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

    def send(self, fields: dict) -> bool:
        """Log and send one record built from `fields`; True if ZeroMQ accepted it.

        Never raises: a record that cannot be built or is invalid (a bug in the caller, or
        a name longer than the record allows) is counted as dropped ("invalid"), one too
        large for the collector is shortened or dropped ("too_large"), see the module.
        """
        try:
            record = self._record(fields)
            problem = record_problem(record)
            frame = encode_record(record) if problem is None else b""
        except Exception as exc:  # e.g. a value json cannot encode
            problem = repr(exc)
        if problem is not None:
            self._drop("invalid", f"invalid metrics record not logged nor sent ({problem})")
            return False
        self._append_log(frame)  # the job log has no size limit: the full record
        if self._socket is None:
            return False
        if len(frame) > self.max_record_bytes:
            frame = self._shrink(record, len(frame))
            if frame is None:
                return False
        try:
            self._socket.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:  # queue full (collector away) or socket unusable
            self._drop("queue_full", None)
            return False
        self.sent += 1
        return True

    def _record(self, fields: dict) -> dict:
        cpu, rss_mb = _job_usage().sample()
        record = {**self._fixed, "t": time.time(), "cpu": cpu, "rss_mb": rss_mb}
        for key, value in fields.items():
            if isinstance(value, numbers.Number) and type(value) not in (bool, int, float):
                # numpy scalars and the like: json and the record check want plain numbers
                value = int(value) if isinstance(value, numbers.Integral) else float(value)
            if type(value) is float and not math.isfinite(value):
                value = None  # e.g. adaptive's loss is inf before any point
            record[key] = value
        if self.dropped:
            record["dropped"] = self.dropped
        if self.log_interval is not None:
            record["interval"] = float(self.log_interval)
        return record

    def _shrink(self, record: dict, size: int) -> bytes | None:
        """`record` shortened to fit max_record_bytes, or None (dropped and counted)."""
        short = dict(record)
        short["host"] = short["host"].split(".")[0][:SHORT_HOST_CHARS]
        short["job_id"] = short["job_id"][:SHORT_JOB_ID_CHARS]
        frame = encode_record(short, ensure_ascii=False)
        if len(frame) > self.max_record_bytes:
            for key in OPTIONAL:
                short.pop(key, None)
            frame = encode_record(short, ensure_ascii=False)
        if len(frame) > self.max_record_bytes:
            self._drop(
                "too_large",
                f"metrics record of {size} bytes exceeds max_record_bytes "
                f"({self.max_record_bytes}) even shortened: not sent (the job log has it)",
            )
            return None
        self.truncated += 1
        self._warn_once(
            "truncated",
            f"metrics record of {size} bytes exceeds max_record_bytes "
            f"({self.max_record_bytes}): sent shortened (host, job id, optional fields)",
        )
        return frame

    def _drop(self, reason: str, message: str | None) -> None:
        self.dropped += 1
        self.dropped_by_reason[reason] += 1
        if message is not None:
            self._warn_once(reason, message)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        try:
            print(f"adaptive-snakemake: {message}; counted, told once", file=sys.stderr)
        except Exception:  # a closed or broken stderr must not stop the learner
            pass

    def counts(self) -> str:
        """One line: records sent, shortened, and not sent by reason."""
        lost = ", ".join(f"{k}: {n}" for k, n in self.dropped_by_reason.items() if n)
        return (
            f"{self.sent} metrics records sent, {self.truncated} shortened, "
            f"{self.dropped} not sent" + (f" ({lost})" if lost else "")
        )

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
        """Release the socket; queued records get at most CLOSE_LINGER_MS to leave.

        If any record was shortened or not sent, says how many on stderr (the job log).
        """
        if (self.dropped or self.truncated) and "summary" not in self._warned:
            self._warned.add("summary")
            try:
                print(f"adaptive-snakemake: {self.counts()}", file=sys.stderr)
            except Exception:
                pass
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
