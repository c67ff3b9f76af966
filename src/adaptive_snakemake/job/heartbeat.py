"""The heartbeat of a job's learner locks, in a process of its own (one per job).

    python -I heartbeat.py INTERVAL PARENT_PID

A thread in the job would stop beating while the learner's function holds the GIL in C
code (Cython, pybind11, a long numpy call), and after ``stale_after`` a second job would
take the lock of a job that is still alive. This process shares no GIL with the job. One
process serves all the locks a job holds (a pack of 100 learners: one process, not 100).

The job tells it what to beat, one JSON object per line on our stdin:

- ``{"hold": PATH, "token": TOKEN}``: touch PATH every ``INTERVAL`` s, by descriptor and
  only while the file still holds TOKEN;
- ``{"drop": PATH}``: stop touching PATH (its lock is released);
- ``{"stop": true}`` or the end of stdin: exit 0.

When a lock file is gone or holds another token, the lock is not ours any more: we stop
touching it and say so on stdout, ``{"lost": PATH}``. We exit 0 when told to, when stdin
ends, or when the job dies (stdin at EOF, or a new parent pid).

It ignores the stop signals (SLURM sends SIGTERM to every process of the job): the job
saves on them and still needs its locks; it stops us when it is done.

Standard library only, and as few imports as possible: it starts in ~20 ms.
"""

import signal

# First of all (SLURM may signal the whole job while we start): the job stops us.
for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
    signal.signal(_signum, signal.SIG_IGN)

import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

# How often, at most, we look whether the job is still our parent (one getppid call).
_PARENT_CHECK = 1.0
_NEVER = float("inf")


def _say(message: str) -> None:
    try:
        os.write(2, f"heartbeat [{os.getpid()}]: {message}\n".encode())
    except OSError:
        pass


def _tell_lost(path: str) -> None:
    try:
        os.write(1, (json.dumps({"lost": path}) + "\n").encode())
    except OSError:
        pass  # the job is gone or stopped reading: it finds out by reading the file


def beat(path: str, token: str) -> bool:
    """Touch ``path`` if it still holds ``token``; False if the lock is no longer ours.

    A passing error (an NFS hiccup) is reported and counts as ours: the next beat retries.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        _say(f"{path} is gone: the lock is no longer ours")
        return False
    except OSError as error:
        _say(f"could not open {path}: {error}")
        return True
    try:
        try:
            ours = json.loads(os.read(fd, 1 << 16)).get("token") == token
        except (ValueError, AttributeError):
            ours = False  # a file half written by a new holder is not ours either
        if not ours:
            _say(f"{path} holds another token: the lock is no longer ours")
            return False
        os.utime(fd)  # by descriptor: never touches a lock file that replaced ours
    except OSError as error:
        _say(f"could not touch {path}: {error}")
    finally:
        os.close(fd)
    return True


class Beats:
    """The locks we touch: path -> (token, when its next beat is due)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.locks: dict[str, tuple[str, float]] = {}
        self._pending = b""

    def take(self, data: bytes) -> bool:
        """Apply the job's messages in ``data``; False once we are told to stop."""
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                _say(f"ignored a message that is not JSON: {line[:200]!r}")
                continue
            if message.get("stop"):
                return False
            if "hold" in message:
                due = time.monotonic() + self.interval  # the file was just written
                self.locks[message["hold"]] = (message["token"], due)
            elif "drop" in message:
                self.locks.pop(message["drop"], None)
        return True

    def beat_due(self) -> None:
        now = time.monotonic()
        for path, (token, due) in list(self.locks.items()):
            if now < due:
                continue
            if beat(path, token):
                self.locks[path] = (token, time.monotonic() + self.interval)
            else:
                del self.locks[path]
                _tell_lost(path)

    def next_due(self) -> float:
        return min((due for _, due in self.locks.values()), default=_NEVER)


def run(interval: float, parent: int) -> int:
    beats = Beats(interval)
    os.set_blocking(1, False)  # a job that does not read our news must not stop the beats
    while True:
        if os.getppid() != parent:
            return 0  # the job is gone (we were re-parented)
        wait = min(max(0.0, beats.next_due() - time.monotonic()), _PARENT_CHECK)
        readable, _, _ = select.select([0], [], [], wait)
        if readable:
            data = os.read(0, 1 << 16)
            if not data or not beats.take(data):
                return 0  # the job stopped us, or died
        beats.beat_due()


def main(argv: list[str]) -> int:
    interval, parent = argv
    return run(float(interval), int(parent))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
