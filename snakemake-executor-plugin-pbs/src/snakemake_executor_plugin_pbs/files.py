"""The plugin's directory, ``<workdir>/.snakemake/pbs/``, on the filesystem jobs share.

::

    exit/<token>    exit marker: the job script's exit code, written by the job itself
    scripts/        job scripts, only while qsub reads them (qsub keeps its own copy)
    events.jsonl    one JSON line per submission, status round and qdel: what was asked
                    of PBS and what it answered (diagnostics; nothing reads it back);
                    the previous run's lines move to events.jsonl.1 once it is large
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

MARKER_RETENTION_S = 7 * 86400
EVENTS_MAX_BYTES = 20_000_000


class PbsDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.exit_dir = self.root / "exit"
        self.scripts_dir = self.root / "scripts"
        self.events = self.root / "events.jsonl"

    def ensure(self) -> PbsDir:
        for d in (self.root, self.exit_dir, self.scripts_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def marker(self, token: str) -> Path:
        return self.exit_dir / token

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

    def prune_markers(self, now: float, retention: float = MARKER_RETENTION_S) -> None:
        """Forget markers of jobs long decided (at start-up, before anything is submitted)."""
        with contextlib.suppress(FileNotFoundError):
            for marker in self.exit_dir.iterdir():
                with contextlib.suppress(OSError):
                    if now - marker.stat().st_mtime > retention:
                        marker.unlink()

    def rotate_events(self, max_bytes: int = EVENTS_MAX_BYTES) -> None:
        """Keep the event log bounded (at start-up): one line per round adds up."""
        with contextlib.suppress(OSError):
            if self.events.stat().st_size > max_bytes:
                os.replace(self.events, self.events.with_name(self.events.name + ".1"))

    def log_event(self, event: str, **fields) -> None:
        """Append one line; O_APPEND keeps concurrent lines whole. Never fails the run."""
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=str)
        with contextlib.suppress(OSError):
            fd = os.open(self.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)


def read_marker(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, UnicodeDecodeError, ValueError):
        return None


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write-then-rename: qsub never reads a half-written job script."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
