"""The collector's pidfile: locked (flock) by the live collector for its whole life.

The lock, not the pid, says whether a collector runs: it disappears with the process,
however that ends, and a reused pid cannot fool it.
"""

import errno
import fcntl
import json
import os
import time
from pathlib import Path

from adaptive_snakemake import layout
from adaptive_snakemake.fileio import read_json_or_none


class CollectorRunning(RuntimeError):
    """Another collector already serves this workflow directory."""


def take_lock(path: Path, attempts: int = 20) -> int:
    """Lock the pidfile for the collector's lifetime. Retried for a second: `status` and
    `start_collector` probe the lock for an instant, which must not look like a collector."""
    layout.ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    for attempt in range(attempts):
        try:
            if _try_flock(fd, fcntl.LOCK_EX):
                return fd
        except OSError:
            os.close(fd)
            raise
        if attempt + 1 < attempts:
            time.sleep(0.05)
    os.close(fd)
    raise CollectorRunning(f"a collector already runs for {path.parent.parent}")


def write_info(fd: int, info: dict) -> None:
    """Record {pid, parent_pid, endpoint, started} in the locked pidfile."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)


def running_collector(workdir: str | os.PathLike) -> dict | None:
    """Pidfile contents ({pid, parent_pid, endpoint, started}) of the live collector, or None."""
    path = layout.pid_file(workdir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    # Locked: a collector runs. Its pid is written right after it binds.
    info = {}
    for _ in range(40):
        info = read_json_or_none(path) or {}
        if info.get("pid"):
            break
        time.sleep(0.05)
    return info if info.get("pid") else {"pid": None}


def _try_flock(fd: int, operation: int) -> bool:
    """Take the flock `operation` (LOCK_EX or LOCK_SH) without waiting; False if another
    process holds a conflicting one."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True
