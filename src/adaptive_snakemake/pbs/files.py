"""The state directory shared by submit, status, cancel and the sidecar.

Layout (default ``<workdir>/.snakemake/pbs/``, override ``ADAPTIVE_SNAKEMAKE_PBS_DIR``)::

    jobs.tsv          registry: one line per submitted job, appended by submit
                      (job_id, token, name, submitted unix time; tab separated)
    exit/<token>      exit marker: the job script's exit code, written by the job itself
    scripts/          wrapped job scripts, only while qsub reads them
    status.json       the sidecar's cache: every registered job and its running|success|failed
    qstat-calls.log   one JSON line per qstat invocation (who called it, for how many jobs)
    sidecar.log       the sidecar's own diagnostics
    cancel.log        qdel output
    cancelled.tsv     ids the cancel command has passed to qdel (one per line)
    sidecar.lock      held by the sidecar that owns status.json (a second sidecar in the
                      same directory writes status-<pid>.json instead)
    flavour           the PBS flavour detected from qstat, when not set explicitly

The registry is append-only while snakemake runs: a line shorter than PIPE_BUF written
with O_APPEND is never interleaved with another writer's line on the same host.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptive_snakemake.atomic import atomic_write_text

ENV_STATE_DIR = "ADAPTIVE_SNAKEMAKE_PBS_DIR"
NO_TOKEN = "-"


def default_state_dir() -> Path:
    return Path(os.environ.get(ENV_STATE_DIR) or Path(".snakemake", "pbs")).absolute()


def atomic_write_json(path: Path, obj: Any) -> None:
    """Compact JSON: the status cache is read once per job per polling round."""
    atomic_write_text(path, json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


@dataclass(frozen=True)
class RegistryEntry:
    job_id: str
    token: str | None
    name: str | None
    submitted: float


class StateDir:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).absolute() if root else default_state_dir()

    @property
    def registry(self) -> Path:
        return self.root / "jobs.tsv"

    @property
    def exit_dir(self) -> Path:
        return self.root / "exit"

    @property
    def scripts_dir(self) -> Path:
        return self.root / "scripts"

    @property
    def cache(self) -> Path:
        return self.root / "status.json"

    @property
    def qstat_log(self) -> Path:
        return self.root / "qstat-calls.log"

    @property
    def sidecar_log(self) -> Path:
        return self.root / "sidecar.log"

    @property
    def cancel_log(self) -> Path:
        return self.root / "cancel.log"

    @property
    def cancelled(self) -> Path:
        return self.root / "cancelled.tsv"

    @property
    def lock(self) -> Path:
        return self.root / "sidecar.lock"

    def ensure(self) -> StateDir:
        for d in (self.root, self.exit_dir, self.scripts_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def marker(self, token: str) -> Path:
        return self.exit_dir / token

    # registry -----------------------------------------------------------------------------

    def register(
        self, job_id: str, token: str | None, name: str | None, when: float | None = None
    ) -> None:
        fields = [
            job_id,
            token or NO_TOKEN,
            name or NO_TOKEN,
            f"{time.time() if when is None else when:.3f}",
        ]
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError(f"registry fields must not contain tabs or newlines: {fields!r}")
        append_line(self.registry, "\t".join(fields))

    def is_registered(self, job_id: str) -> bool:
        try:
            text = self.registry.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        return f"\n{job_id}\t" in f"\n{text}"

    def read_registry(self) -> list[RegistryEntry]:
        return RegistryReader(self.registry).read_new()

    # markers ------------------------------------------------------------------------------

    def read_markers(self, tokens: set[str]) -> dict[str, int]:
        """Exit codes of the jobs whose marker exists, by token.

        Lists the directory first: on NFS a READDIR revalidates the directory, so a marker
        written on a compute node shows up here sooner than an open() of its name would.
        """
        if not tokens:
            return {}
        try:
            present = set(os.listdir(self.exit_dir)) & tokens
        except FileNotFoundError:
            return {}
        codes = {}
        for token in present:
            code = read_marker(self.marker(token))
            if code is not None:
                codes[token] = code
        return codes

    # cancellations ------------------------------------------------------------------------

    def mark_cancelled(self, job_ids: list[str]) -> None:
        append_line(self.cancelled, "\n".join(job_ids))

    def read_cancelled(self) -> set[str]:
        try:
            return set(self.cancelled.read_text(encoding="utf-8").split())
        except FileNotFoundError:
            return set()

    # the qstat call log -------------------------------------------------------------------

    def log_qstat_call(self, caller: str, kind: str, njobs: int, rc: int | None, seconds: float):
        record = {
            "t": round(time.time(), 3),
            "caller": caller,
            "kind": kind,
            "njobs": njobs,
            "rc": rc,
            "seconds": round(seconds, 3),
            "pid": os.getpid(),
        }
        append_line(self.qstat_log, json.dumps(record, sort_keys=True))


def read_marker(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def append_line(path: Path, line: str) -> None:
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class RegistryReader:
    """Reads the registry incrementally: each call returns only lines added since the last.

    A last line without its newline is being written: it is left for the next call. If the
    file was replaced (compaction), reading starts again from the top.
    """

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.inode: int | None = None

    def read_new(self) -> list[RegistryEntry]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            inode = os.fstat(f.fileno()).st_ino
            if inode != self.inode or os.fstat(f.fileno()).st_size < self.offset:
                self.inode, self.offset = inode, 0
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [e for e in map(parse_registry_line, complete.decode("utf-8").splitlines()) if e]


def parse_registry_line(line: str) -> RegistryEntry | None:
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 4 or not fields[0]:
        return None
    try:
        submitted = float(fields[3])
    except ValueError:
        return None
    token = None if fields[1] == NO_TOKEN else fields[1]
    name = None if fields[2] == NO_TOKEN else fields[2]
    return RegistryEntry(fields[0], token, name, submitted)


def load_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
