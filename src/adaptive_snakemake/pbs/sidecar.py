"""cluster-generic sidecar: one qstat per round for all of this workflow's active jobs.

snakemake starts this once (``cluster-generic-sidecar-cmd``, run without a shell), reads
the first line we print and passes it to every submit, status and cancel call as
``SNAKEMAKE_CLUSTER_SIDECAR_VARS`` (and, through ``qsub -V``, to every job). The line is
JSON: our pid, the state directory, the cache path, the PBS flavour, the poll interval.

Every ``interval`` seconds: read jobs newly added to the registry, run ONE qstat for all
jobs not yet decided, decide each (see :mod:`adaptive_snakemake.pbs.decide`) and rewrite
the cache ``status.json`` atomically. The status command only reads that file, so the
scheduler sees one qstat per round whatever the number of jobs.

Stopping:

- SIGTERM: snakemake is shutting down. It has decided every job it waits for, so a job
  this run submitted that is still undecided was abandoned (Ctrl-C, or an error in
  snakemake): qdel it, unless the cancel command already did. This is not redundant:
  snakemake's ``cancel()`` only sees jobs that are not in the middle of a status round,
  and a round over thousands of jobs lasts minutes (snakemake-interface-executor-plugins
  9.4, ``RemoteExecutor._wait_for_jobs`` empties ``active_jobs`` while it checks them).
  ``ADAPTIVE_SNAKEMAKE_PBS_CANCEL_ON_EXIT=0`` turns this off.
- the parent went away (snakemake killed, or the terminal closed): stop, leave the jobs
  alone; a new snakemake may pick them up.
- SIGINT is ignored: Ctrl-C reaches the whole foreground process group; what happens then
  is snakemake's decision, carried out through the signals above.

Nothing but the vars line goes to stdout (snakemake echoes our stdout); diagnostics go to
``sidecar.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from adaptive_snakemake.pbs.cancel import cancel
from adaptive_snakemake.pbs.config import (
    SidecarVars,
    env_float,
    resolve_flavour,
)
from adaptive_snakemake.pbs.decide import DEFAULT_GRACE, JobRecord, decide
from adaptive_snakemake.pbs.files import (
    RegistryEntry,
    RegistryReader,
    StateDir,
    atomic_write_json,
    atomic_write_text,
    load_json,
)
from adaptive_snakemake.pbs.qstat import FLAVOURS, lookup, query

DEFAULT_INTERVAL = 15.0
RETENTION_DAYS = 7.0


def start_extra_services(state: StateDir, stop: threading.Event) -> tuple[dict, Callable[[], None]]:
    """Hook for services that live beside snakemake for the whole run (metrics collector).

    Called once, before the vars line is printed. Returns ``(vars, shutdown)``: ``vars``
    are merged into SNAKEMAKE_CLUSTER_SIDECAR_VARS, which reaches every submit/status/cancel
    call and, through ``qsub -V``, every job (e.g. the collector's address); ``shutdown``
    is called when the sidecar exits. ``stop`` is set when the sidecar is asked to stop.
    Run services in daemon threads so that they end with this process.
    """
    return {}, lambda: None


class Poller:
    """The sidecar's state: every registered job's record, and one polling round."""

    def __init__(
        self,
        state: StateDir,
        flavour: str,
        grace: float = DEFAULT_GRACE,
        qstat_timeout: float = 60.0,
    ):
        self.state = state
        self.flavour = flavour
        self.grace = grace
        self.qstat_timeout = qstat_timeout
        self.records: dict[str, JobRecord] = {}
        self.reader = RegistryReader(state.registry)
        self.rounds = 0  # qstat calls made
        self.ticks = 0
        self.last_query: dict = {}
        self.started = time.time()
        self.submitted_here: set[str] = set()  # registered while we serve this snakemake
        self.serving = False

    def load_cache(self, cache: dict | None) -> None:
        for job_id, data in ((cache or {}).get("jobs") or {}).items():
            with contextlib.suppress(TypeError):
                self.records[job_id] = JobRecord.from_json(data)

    def add(self, entry: RegistryEntry) -> None:
        record = self.records.get(entry.job_id)
        if record is None:
            self.records[entry.job_id] = JobRecord(
                entry.job_id, entry.token, entry.name, entry.submitted
            )
        elif record.token is None and entry.token is not None:
            self.records[entry.job_id] = JobRecord.from_json(
                {**record.to_json(), "token": entry.token, "name": entry.name}
            )

    def ingest_registry(self) -> None:
        for entry in self.reader.read_new():
            self.add(entry)
            if self.serving and entry.token is not None:  # status-added ids are not ours
                self.submitted_here.add(entry.job_id)

    def abandoned(self) -> list[str]:
        """Jobs this run submitted that nobody decided and nobody cancelled yet."""
        self.ingest_registry()
        cancelled = self.state.read_cancelled()
        return sorted(
            job_id
            for job_id in self.submitted_here
            if not self.records[job_id].final and job_id not in cancelled
        )

    def pending(self) -> list[JobRecord]:
        return [r for r in self.records.values() if not r.final]

    def poll_round(self, now: float | None = None) -> None:
        self.ticks += 1
        self.ingest_registry()
        pending = self.pending()
        if not pending:
            return
        result = query(
            self.flavour,
            [r.job_id for r in pending],
            self.state,
            caller="sidecar",
            timeout=self.qstat_timeout,
        )
        self.rounds += 1
        now = time.time() if now is None else now
        self.last_query = {
            "t": now,
            "ok": result.ok,
            "rc": result.rc,
            "error": result.error,
            "njobs": len(pending),
        }
        if not result.ok:
            # Server down or qstat broken: absent ids prove nothing. Keep every job running.
            log(self.state, f"qstat failed (rc={result.rc}): {result.error}")
            return
        markers = self.state.read_markers({r.token for r in pending if r.token})
        for record in pending:
            self.records[record.job_id] = decide(
                record,
                lookup(result.jobs, record.job_id),
                markers.get(record.token) if record.token else None,
                now,
                self.grace,
                self.flavour,
            )

    def snapshot(self, now: float, interval: float) -> dict:
        return {
            "v": 1,
            "writer": "sidecar",
            "pid": os.getpid(),
            "flavour": self.flavour,
            "interval": interval,
            "grace": self.grace,
            "started": self.started,
            "updated": now,
            "rounds": self.rounds,
            "ticks": self.ticks,
            "last_query": self.last_query,
            "jobs": {job_id: r.to_json() for job_id, r in self.records.items()},
        }


def compact(poller: Poller, now: float, retention: float) -> None:
    """Forget jobs decided more than ``retention`` seconds ago: registry, cache, markers.

    Only at start-up, while snakemake waits for our first line and submits nothing.
    """

    def keep(r: JobRecord) -> bool:
        return not r.final or now - (r.decided or r.submitted or now) < retention

    poller.records = {k: r for k, r in poller.records.items() if keep(r)}
    entries = RegistryReader(poller.state.registry).read_new()
    lines = [
        "\t".join([e.job_id, e.token or "-", e.name or "-", f"{e.submitted:.3f}"]) + "\n"
        for e in entries
        if e.job_id in poller.records
    ]
    if len(lines) != len(entries):
        atomic_write_text(poller.state.registry, "".join(lines))
    with contextlib.suppress(FileNotFoundError):
        for marker in poller.state.exit_dir.iterdir():
            with contextlib.suppress(OSError):
                if now - marker.stat().st_mtime > retention:
                    marker.unlink()


def log(state: StateDir, message: str) -> None:
    with contextlib.suppress(OSError), open(state.sidecar_log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}\n")


def try_lock(state: StateDir):
    """The file lock that makes this sidecar the owner of status.json (None if taken)."""
    f = open(state.lock, "a")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adaptive_snakemake.pbs.sidecar",
        description="Poll PBS with one qstat per round for all jobs of this workflow.",
    )
    p.add_argument("--interval", type=float, default=env_float("POLL_INTERVAL", DEFAULT_INTERVAL))
    p.add_argument("--grace", type=float, default=env_float("GRACE", DEFAULT_GRACE))
    p.add_argument("--flavour", choices=[*FLAVOURS, "auto"], default=None)
    p.add_argument("--qstat-timeout", type=float, default=env_float("QSTAT_TIMEOUT", 60.0))
    p.add_argument("--retention-days", type=float, default=RETENTION_DAYS)
    p.add_argument("--state-dir", default=None)
    p.add_argument(
        "--cancel-on-exit",
        type=int,
        choices=[0, 1],
        default=int(env_float("CANCEL_ON_EXIT", 1)),
        help="on SIGTERM, qdel the jobs of this run that are still undecided (default 1)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state = StateDir(args.state_dir).ensure()
    stop = threading.Event()
    terminated = threading.Event()

    def on_sigterm(*_):
        terminated.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    lock = try_lock(state)
    cache_path = state.cache if lock else state.root / f"status-{os.getpid()}.json"
    flavour = resolve_flavour(args.flavour, None, state)
    poller = Poller(state, flavour, args.grace, args.qstat_timeout)
    poller.load_cache(load_json(state.cache))
    poller.ingest_registry()
    if lock:
        compact(poller, time.time(), args.retention_days * 86400)
        poller.ingest_registry()  # re-sync the reader with the rewritten registry
    atomic_write_json(cache_path, poller.snapshot(time.time(), args.interval))

    extra_vars, shutdown_extra = start_extra_services(state, stop)
    vars = SidecarVars(
        pid=os.getpid(),
        state_dir=str(state.root),
        cache=str(cache_path),
        flavour=flavour,
        interval=args.interval,
        grace=args.grace,
        extra=extra_vars,
    )
    poller.serving = True
    sys.stdout.write(vars.to_line() + "\n")
    sys.stdout.flush()
    log(state, f"started: flavour={flavour} interval={args.interval:g}s cache={cache_path}")

    parent = os.getppid()
    try:
        while not stop.is_set():
            poller.poll_round()
            atomic_write_json(cache_path, poller.snapshot(time.time(), args.interval))
            deadline = time.monotonic() + args.interval
            while not stop.is_set() and time.monotonic() < deadline:
                if os.getppid() != parent:  # snakemake died; we were re-parented
                    log(state, "parent process is gone; stopping")
                    stop.set()
                stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
    finally:
        shutdown_extra()
        if terminated.is_set() and args.cancel_on_exit:
            leftover = poller.abandoned()
            if leftover:
                log(state, f"snakemake stopped with {len(leftover)} jobs undecided: qdel")
                cancel(leftover, state, wait=0)
        atomic_write_json(cache_path, poller.snapshot(time.time(), args.interval))
        log(state, f"stopped after {poller.rounds} qstat rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
