"""logs/metrics.jsonl: records appended by the collector, rotated by size, kept on a full disk.

The collector is the only writer (it holds the workflow's collector lock). Records wait
in a bounded queue and are written in chunks by `flush` with plain `os.write` on an
O_APPEND descriptor, so we know exactly which records reached the file. When a write
fails (disk full, quota, file too large, I/O error, directory gone), the records not
written stay queued and are tried again at the next flush (the collector flushes every
`status_interval`); a torn last line is cut off. A record that arrives while the queue
holds `max_pending_bytes` is counted as dropped ("write_failed"), and so is anything
still queued when the collector stops. Every record is therefore stored or counted.

Rotation: a record that would take the file past `rotate_bytes` goes to a new file; the
full one becomes metrics.jsonl.1, older ones move up to .2 ... .`keep`, and the oldest
beyond `keep` is deleted. Records are never split across files, so the newest records
are in metrics.jsonl, and together the files hold at most (keep + 1) * rotate_bytes
(plus one record). `metrics_files` lists them oldest first.
"""

import errno
import os
import re
from pathlib import Path

FLUSH_BYTES = 1 << 16  # the collector writes when this much is queued (and every interval)
MAX_PENDING_BYTES = 32 << 20  # records queued while writes fail (~100 s at 10,000 jobs/s)
MAX_CHUNK_BYTES = 4 << 20  # bytes per os.write call


def rotated_path(path: str | os.PathLike, index: int) -> Path:
    """metrics.jsonl.<index>: the index-th newest rotated file."""
    path = Path(path)
    return path.with_name(f"{path.name}.{index}")


def metrics_files(path: str | os.PathLike) -> list[Path]:
    """The existing files of the metrics history at `path`, oldest first."""
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    rotated = []
    try:
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if match:
                rotated.append((int(match.group(1)), Path(entry.path)))
    except OSError:
        return []
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


class MetricsFile:
    """Appends lines (records ending in a newline) to `path`; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike,
        rotate_bytes: int,
        keep: int,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ):
        self.path = Path(path)
        self.rotate_bytes = max(1, int(rotate_bytes))
        self.keep = keep
        self.max_pending_bytes = max_pending_bytes
        self.stored = 0  # records written to the file (handed to the OS)
        self.write_failed = 0  # records given up: queue full while writes fail, or at close
        self.rotations = 0
        self.error: OSError | None = None  # the last write failed with this; None once it works
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._fd: int | None = None
        self._size = 0
        self._inode = None
        self._torn = False  # the file ends in a torn line: start the next write on a new line

    @property
    def pending(self) -> int:
        """Records queued, not yet written."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def extend(self, lines: list[bytes], nbytes: int) -> None:
        """Queue `lines` (each ending in a newline; `nbytes` long together)."""
        if self._pending_bytes + nbytes <= self.max_pending_bytes:
            self._pending.extend(lines)
            self._pending_bytes += nbytes
            return
        for line in lines:  # the queue is full: keep what fits, count the rest
            if self._pending_bytes + len(line) <= self.max_pending_bytes:
                self._pending.append(line)
                self._pending_bytes += len(line)
            else:
                self.write_failed += 1

    def flush(self) -> None:
        """Write every queued record; OSError if some could not be (they stay queued)."""
        try:
            if self._fd is not None and self._replaced():
                self._close_fd()
            while self._pending:
                if self._fd is None:
                    self._open()
                count, nbytes = self._fitting(self.rotate_bytes - self._size)
                if count == 0:
                    self._rotate()
                    continue
                self._write(count, nbytes)
        except OSError as exc:
            self.error = exc
            raise
        self.error = None

    def open(self) -> None:
        """Open (or create) the file now rather than at the first flush; OSError if not."""
        if self._fd is None:
            self._open()

    def close(self) -> None:
        """Flush what can be; records still queued are counted as "write_failed"."""
        try:
            self.flush()
        except OSError:
            pass
        self.write_failed += len(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._close_fd()

    # -- internals --------------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Read-write only to look at the last byte: a file ending mid-line (a writer
        # killed mid-write) must not glue our first record to its torn line.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            info = os.fstat(fd)
            self._torn = info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n"
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size, self._inode = fd, info.st_size, info.st_ino

    def _replaced(self) -> bool:
        """The file was moved or deleted behind our back (by hand): start a new one."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def _fitting(self, room: int) -> tuple[int, int]:
        """How many queued records (and bytes) go into the current file in one write."""
        room = min(room, MAX_CHUNK_BYTES)
        count = nbytes = 0
        for line in self._pending:
            if nbytes + len(line) > room:
                break
            count += 1
            nbytes += len(line)
        if count == 0 and self._size == 0:  # a record larger than a whole file: alone
            return 1, len(self._pending[0])
        return count, nbytes

    def _rotate(self) -> None:
        self._close_fd()
        for old in metrics_files(self.path):  # rotated files beyond `keep` (it shrank)
            if old != self.path and int(old.name.rsplit(".", 1)[1]) >= self.keep:
                old.unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            source = rotated_path(self.path, index)
            if source.exists():
                os.replace(source, rotated_path(self.path, index + 1))
        if self.keep > 0:
            os.replace(self.path, rotated_path(self.path, 1))
        else:
            self.path.unlink(missing_ok=True)
        self.rotations += 1

    def _write(self, count: int, nbytes: int) -> None:
        data = b"".join(self._pending[:count])
        prefix = b"\n" if self._torn else b""
        view = memoryview(prefix + data)
        done = 0
        try:
            while done < len(view):
                written = os.write(self._fd, view[done:])
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
        except OSError:
            self._after_partial_write(done - len(prefix), data)
            raise
        self._torn = False
        self._size += len(view)
        self._stored(count, nbytes)

    def _after_partial_write(self, done: int, data: bytes) -> None:
        """Keep the whole records of a write cut short; remove its torn last line."""
        if done < 0:  # not even the newline that ends an earlier torn line
            return
        if self._torn:
            self._size += 1
            self._torn = False
        whole = data.rfind(b"\n", 0, done) + 1
        count = data.count(b"\n", 0, whole)
        if whole < done:
            try:
                os.ftruncate(self._fd, self._size + whole)
            except OSError:
                self._torn = True
                self._size += done - whole
        self._size += whole
        self._stored(count, whole)

    def _stored(self, count: int, nbytes: int) -> None:
        del self._pending[:count]
        self._pending_bytes -= nbytes
        self.stored += count
