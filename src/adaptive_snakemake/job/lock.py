"""A per-learner lock on a shared filesystem, held by jobs that may run on different nodes.

Why: after the main snakemake process is killed, a restart submits a second job for a
learner whose first job still runs. The second job must wait for the first (then it finds
the checkpoint or the final result), and must take over the lock of a job that died.

How, with nothing but files (fcntl/flock are unreliable on NFS):

- acquire: create ``path`` with O_CREAT|O_EXCL (atomic locally and on NFSv3+), holding
  JSON {job_id, host, pid, acquired_at, token}; the token names this generation of the lock.
- heartbeat: while we hold it, a small process of its own (``heartbeat.py``, started with
  subprocess: the job may have MPI initialised) touches the file every ``heartbeat`` s, as
  long as the job lives and the file holds our token; one such process serves all the
  locks a job holds (``_Heartbeats``). Not a thread: a function that holds the GIL in C code
  for minutes would stop it, and a live job would lose its lock.
- verify: before it writes a checkpoint or a result, the job reads the lock file and checks
  that it still holds our token (``verify`` raises ``LockLost`` otherwise); a heartbeat
  process that died is restarted there.
- wait: a waiter polls. A lock is stale when the waiter has seen it unchanged (same token,
  same mtime) for ``stale_after`` s of its own monotonic clock; comparing the file's mtime
  with our clock would trust the clocks of different nodes to agree.
- takeover: exactly one waiter per stale generation, the one that creates
  ``path.takeover-<token>-1`` with O_EXCL, removes the stale file (moving it aside first and
  checking it moved the stale one, never a fresh lock). Then everyone competes for the lock
  with O_EXCL again. A taker that dies mid-takeover leaves its claim, which goes stale in
  turn: the next claim level (``-2``...) is then open.
- history: one JSON line per event in ``path.history``, so that anyone can check that no two
  jobs held a learner at the same time.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptive_snakemake.fileio import append_line
from adaptive_snakemake.processes import batch_job_id, is_alive

logger = logging.getLogger(__name__)

_HEARTBEAT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heartbeat.py")
# How long a release waits for the heartbeat process to end before it kills it.
_HEARTBEAT_STOP_TIMEOUT = 5.0


class _Heartbeats:
    """The heartbeat process of this process's locks (one per heartbeat interval): it is
    told which lock files to touch (heartbeat.py) and says which ones are no longer ours."""

    def __init__(self, interval: float):
        self.interval = interval
        self.process: subprocess.Popen | None = None
        self.held: dict[str, str] = {}  # path -> token
        self.lost: set[str] = set()
        self._output = b""

    def hold(self, path: str, token: str) -> None:
        self.held[path] = token
        self.lost.discard(path)
        if self.ended():
            self._start()  # tells it every lock held, this one too
        else:
            self._send({"hold": path, "token": token})

    def drop(self, path: str) -> None:
        self.held.pop(path, None)
        self.lost.discard(path)
        if self.held:
            self._send({"drop": path})
        else:
            self.stop()

    def ended(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def has_lost(self, path: str) -> bool:
        """True once the process said that ``path`` is no longer ours (read without waiting)."""
        if self.process is not None:
            try:
                data = os.read(self.process.stdout.fileno(), 1 << 16)
            except (BlockingIOError, OSError, ValueError):
                data = b""
            *lines, self._output = (self._output + data).split(b"\n")
            for line in lines:
                with suppress(ValueError, AttributeError, KeyError):
                    self.lost.add(json.loads(line)["lost"])
        return path in self.lost

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        # A message, not only EOF: forked children (process pools) may hold the pipe open.
        with suppress(OSError):  # it has ended already
            process.stdin.write(b'{"stop": true}\n')
        with suppress(OSError):
            process.stdin.close()
        try:
            process.wait(_HEARTBEAT_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def _start(self) -> None:
        self.stop()
        if os.path.exists(_HEARTBEAT_SCRIPT):
            program = ["-I", _HEARTBEAT_SCRIPT]  # -I: no site-packages, starts in ~20 ms
        else:
            program = ["-m", "adaptive_snakemake.job.heartbeat"]
        self.process = subprocess.Popen(
            [sys.executable, *program, repr(self.interval), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        os.set_blocking(self.process.stdout.fileno(), False)
        self._output = b""
        for path, token in self.held.items():
            self._send({"hold": path, "token": token})

    def _send(self, message: dict) -> None:
        """A message to the process; if it has ended, the next check of a lock restarts it."""
        if self.process is None:
            return
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            pass


_heartbeats: dict[tuple[int, float], _Heartbeats] = {}


def _heartbeats_for(interval: float) -> _Heartbeats:
    """This process's heartbeat process for ``interval`` (a forked child gets its own)."""
    key = (os.getpid(), interval)
    if key not in _heartbeats:
        _heartbeats[key] = _Heartbeats(interval)
    return _heartbeats[key]


class LockLost(RuntimeError):
    """Another job took over this learner's lock, or we cannot tell that it is still ours:
    stop, and write nothing."""


@dataclass(frozen=True)
class _LockFile:
    """One reading of a lock file."""

    generation: str  # the holder's token; the inode while the holder is still writing it
    info: dict[str, Any] | None  # the holder's record, None if not (yet) readable
    signature: tuple  # changes whenever the holder shows a sign of life

    def describe(self) -> str:
        if self.info is None:
            return "a holder still writing its record"
        i = self.info
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(i.get("acquired_at", 0)))
        return f"job {i.get('job_id')} on {i.get('host')} (pid {i.get('pid')}) since {since}"


def _read_lock_file(path: str) -> _LockFile | None:
    try:
        # open + fstat, not stat: opening revalidates NFS's attribute cache (close-to-open),
        # a plain stat may show an mtime up to a minute old.
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        raw = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        info = json.loads(raw)
        generation = str(info["token"])
    except (ValueError, TypeError, KeyError):
        info, generation = None, f"inode-{st.st_ino}"
    return _LockFile(generation, info, (generation, st.st_mtime_ns, st.st_size))


class _UnchangedTimer:
    """How long, on this process's monotonic clock, each watched thing has looked the same."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, float]] = {}

    def unchanged_for(self, key: str, signature: Any) -> float:
        now = time.monotonic()
        previous = self._seen.get(key)
        if previous is None or previous[0] != signature:
            self._seen[key] = (signature, now)
            return 0.0
        return now - previous[1]


class LearnerLock:
    """Exclusive lock of one learner across processes and nodes sharing a filesystem.

    ``with LearnerLock("state/<name>.lock"):`` waits as long as another live job holds it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        heartbeat: float = 10.0,
        stale_after: float = 60.0,
        poll: float = 1.0,
        owner: dict[str, Any] | None = None,
    ) -> None:
        if not 0 < heartbeat < stale_after:
            raise ValueError(f"need 0 < heartbeat ({heartbeat}) < stale_after ({stale_after})")
        self.path = os.fspath(path)
        self.history_path = self.path + ".history"
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.poll = poll
        # Who we are, as the lock file and the history record it.
        me = {"job_id": batch_job_id(), "host": socket.gethostname(), "pid": os.getpid()}
        self.owner = {**me, **(owner or {})}
        self._lost: str | None = None  # why the lock is no longer ours, once we know it
        self._token: str | None = None
        self._holder_pid: int | None = None
        self._held = False
        self._beats: _Heartbeats | None = None

    @property
    def held(self) -> bool:
        return self._held

    @property
    def lost(self) -> bool:
        """True once we know that another job took the lock over. Cheap while the heartbeat
        process runs (one waitpid); reads the lock file only when it has ended."""
        if self._lost is None and self._held and self._heartbeat_ended():
            self._still_ours()  # reads the file; restarts the heartbeat if the lock is ours
        return self._lost is not None

    def verify(self) -> None:
        """Raise LockLost unless the lock file still holds our token.

        Call it before writing anything the lock protects: one open and read of the lock
        file (and a touch of it, a sign of life of the job itself). A heartbeat process that
        died is restarted.
        """
        if not self._held:
            raise LockLost(f"learner lock {self.path} is not held by this job")
        if self._lost is None:
            self._still_ours()
        if self._lost is not None:
            raise LockLost(self._lost)

    def __enter__(self) -> LearnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait until we hold the lock (True), or until ``timeout`` seconds passed (False)."""
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this LearnerLock")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._token = secrets.token_hex(16)
        deadline = None if timeout is None else time.monotonic() + timeout
        timer = _UnchangedTimer()
        announced = None
        while True:
            if self._try_create():
                self._holder_pid = os.getpid()
                self._start_holding()
                return True
            current = _read_lock_file(self.path)
            if current is None:
                continue  # released between our create and our read: try again at once
            dead = self._holder_died_on_this_host(current)
            if dead or timer.unchanged_for("lock", current.signature) >= self.stale_after:
                if self._take_over(current, timer):
                    continue
            elif current.generation != announced:
                announced = current.generation
                logger.info("learner lock %s is held by %s; waiting", self.path, current.describe())
                self._record("waiting", holder=current.info)
            if deadline is not None and time.monotonic() >= deadline:
                return False
            remaining = self.poll if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(self.poll, remaining)))

    def _holder_died_on_this_host(self, current: _LockFile) -> bool:
        """A holder on our own host whose process is gone is dead now: no need to wait
        stale_after for its heartbeat to age (a rerun after kill -9 resumes at once)."""
        info = current.info or {}
        if info.get("host") != self.owner.get("host") or not isinstance(info.get("pid"), int):
            return False
        return not is_alive(info["pid"])

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file if it is still ours."""
        if not self.held or os.getpid() != self._holder_pid:
            return  # not held, or a forked child leaving the with block: the parent holds it
        self._stop_heartbeat()
        self._held = False
        current = _read_lock_file(self.path)
        if current is None or current.generation != self._token:
            logger.error(
                "learner lock %s was no longer ours at release (now: %s); left alone",
                self.path,
                current.describe() if current else "no lock file",
            )
            return
        # Recorded before the file goes, so that in the history every "released" comes
        # before the next "acquired".
        self._record("released")
        self._remove_if_generation(self._token)

    def _try_create(self) -> bool:
        record = {**self.owner, "acquired_at": time.time(), "token": self._token}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(record, sort_keys=True).encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        return True

    def _start_holding(self) -> None:
        self._lost = None
        self._record("acquired")
        try:
            self._start_heartbeat()
        except BaseException:
            self._record("released")
            self._remove_if_generation(self._token)
            raise
        self._held = True

    def _start_heartbeat(self) -> None:
        """Our lock file joins the beats of this process's heartbeat process (see
        heartbeat.py), which is started with the first lock; its stdin is how we tell it
        what to beat and how it sees that we died."""
        self._beats = _heartbeats_for(self.heartbeat)
        self._beats.hold(os.path.abspath(self.path), self._token)

    def _heartbeat_ended(self) -> bool:
        """No heartbeat touches our file: its process ended, or it found the file not ours."""
        beats = self._beats
        return beats is None or beats.ended() or beats.has_lost(os.path.abspath(self.path))

    def _stop_heartbeat(self) -> None:
        beats, self._beats = self._beats, None
        if beats is not None:
            beats.drop(os.path.abspath(self.path))  # the last lock's drop ends the process

    def _still_ours(self) -> None:
        """Read the lock file: is it still ours? Sets ``_lost`` if not; if it is, touches it
        and restarts a heartbeat process that ended."""
        ours = None
        for attempt in range(3):  # a passing NFS hiccup must not stop the job
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                ours = False
                break
            except OSError as error:
                problem = error
                time.sleep(0.2 * (attempt + 1))
                continue
            try:
                try:
                    ours = json.loads(os.read(fd, 1 << 16)).get("token") == self._token
                except (ValueError, AttributeError):
                    ours = False  # a lock file being written by another job
                if ours:
                    os.utime(fd)  # by descriptor: never touches a lock that replaced ours
                break
            except OSError as error:
                problem = error
            finally:
                os.close(fd)
        if ours is None:
            self._notice_lost(None, f"cannot read the lock file ({problem})")
        elif not ours:
            self._notice_lost(_read_lock_file(self.path))
        elif self._heartbeat_ended():
            self._restart_heartbeat()

    def _restart_heartbeat(self) -> None:
        code = None if self._beats is None else self._beats.exit_status()
        logger.warning(
            "the heartbeat of learner lock %s stopped (its process's exit status: %s) while "
            "the lock is still ours; starting it again",
            self.path,
            code,
        )
        self._record("heartbeat_restarted", exit_status=code)
        self._stop_heartbeat()
        try:
            self._start_heartbeat()
        except OSError as error:
            # Without a heartbeat the lock goes stale while we compute: stop, write nothing.
            self._notice_lost(None, f"cannot start its heartbeat process ({error})")

    def _notice_lost(self, current: _LockFile | None, problem: str | None = None) -> None:
        if self._lost is not None:
            return
        if problem is None:
            holder = current.describe() if current else "no lock file"
            self._lost = (
                f"learner lock {self.path} was taken over (now: {holder}): another job runs "
                "this learner; this job stops without writing a checkpoint or a result"
            )
        else:
            self._lost = (
                f"learner lock {self.path} is at risk: {problem}; this job stops without "
                "writing a checkpoint or a result"
            )
        logger.error("%s", self._lost)
        self._record("lost", holder=current.info if current else None, problem=problem)

    def _take_over(self, stale: _LockFile, timer: _UnchangedTimer) -> bool:
        """Remove the stale lock if we win its claim; True if it is gone."""
        claim_prefix = f"{self.path}.takeover-{stale.generation}-"
        for level in itertools.count(1):
            claim = f"{claim_prefix}{level}"
            try:
                os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                break
            except FileExistsError:
                # Another waiter is taking it over; only if its claim outlives stale_after
                # has it died doing so, and the next level is ours to try.
                if timer.unchanged_for(claim, "exists") < self.stale_after:
                    return False
        try:
            current = _read_lock_file(self.path)
            if current is None or current.generation != stale.generation:
                return current is None  # already gone (another waiter was faster)
            # Recorded before the file goes, so that in the history it precedes the next
            # "acquired" (the next holder may create the lock the moment ours is gone).
            self._record("took_over_stale", previous=stale.info, previous_token=stale.generation)
            if not self._remove_if_generation(stale.generation):
                self._record("takeover_undone", previous_token=stale.generation)
                return False
            logger.warning(
                "took over stale learner lock %s from %s (no sign of life for %s s)",
                self.path,
                stale.describe(),
                self.stale_after,
            )
            return True
        finally:
            # Ours, and those of takers that died before us: that generation is gone.
            for n in range(1, level + 1):
                with suppress(FileNotFoundError):
                    os.unlink(f"{claim_prefix}{n}")

    def _remove_if_generation(self, generation: str) -> bool:
        """Delete the lock file if it is still ``generation``; True if we deleted it.

        Moved aside first and checked after: between a check and an unlink, the file could
        be replaced by a fresh lock, which we would then delete.
        """
        current = _read_lock_file(self.path)
        if current is None or current.generation != generation:
            return False
        aside = f"{self.path}.aside-{secrets.token_hex(8)}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = _read_lock_file(aside)
            if moved is not None and moved.generation == generation:
                return True
            try:  # we moved a fresh lock: put it back (link: never over a newer one)
                os.link(aside, self.path)
            except FileExistsError:
                logger.error("could not put back learner lock %s after a race", self.path)
            return False
        finally:
            os.unlink(aside)

    def _record(self, event: str, **details: Any) -> None:
        """Append one event to the history. Diagnostics only: a failure is logged, not raised.

        On NFS, appends from different hosts at the same instant can interleave; events are rare.
        """
        entry = {"event": event, "time": time.time(), **self.owner, "token": self._token}
        try:
            append_line(self.history_path, json.dumps({**entry, **details}, sort_keys=True))
        except OSError as e:
            logger.warning("could not append to %s: %s", self.history_path, e)
