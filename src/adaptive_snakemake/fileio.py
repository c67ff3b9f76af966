"""Small file operations every part shares: atomic writes, appended lines, JSON reads.

Atomic writes: temp file in the same directory, fsync, rename, fsync the directory.
Light on purpose (no numpy, no adaptive): the metrics collector and reporter use it too.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` by ``data`` so that readers see either the old or the new file.

    Raises on any failure (after removing the temporary file); the old file is untouched.
    ``mode`` (before the umask) applies from the start: a secret is never readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is a rename within one filesystem; a unique name, so
    # concurrent writers (threads, ranks, a second job) never share a temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open rather than mkstemp: mkstemp creates 0600 files, we want the user's umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on NFS, write errors may only surface here or at close
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (sorted keys, indent 2, trailing newline), atomically."""
    # Serialise first: an object that fails to serialise must not touch the file at all.
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=2) + "\n")


def append_line(path: str | os.PathLike, line: bytes | str) -> None:
    """Append ``line`` and a newline to ``path`` (created if missing) in one O_APPEND write.

    One write per line: lines of processes sharing the file (a job's output and its metrics,
    several jobs' lock events) never interleave on one host; on NFS, appends from different
    hosts at the same instant can. Raises OSError.
    """
    data = (line.encode() if isinstance(line, str) else line) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``; None if the file is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable: it lives in the directory, not in the file."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        # Some filesystems cannot fsync a directory at all; the rename is done regardless.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
