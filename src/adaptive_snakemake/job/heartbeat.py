"""The heartbeat of a learner lock, in a process of its own.

    python -I heartbeat.py LOCK_PATH TOKEN INTERVAL PARENT_PID

A thread in the job would stop beating while the learner's function holds the GIL in C
code (Cython, pybind11, a long numpy call), and after ``stale_after`` a second job would
take the lock of a job that is still alive. This process shares no GIL with the job.

Every ``INTERVAL`` s it touches the lock file, by descriptor and only while the file still
holds ``TOKEN``. It exits:

- 0 when the job closes our stdin (release) or dies (stdin at EOF, or a new parent pid);
- 3 (``LOST``) when the lock file is gone or holds another token: the lock is not ours.

It ignores the stop signals (SLURM sends SIGTERM to every process of the job): the job
saves on them and still needs its lock; it stops us when it is done.

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

LOST = 3
# How often, at most, we look whether the job is still our parent (one getppid call).
_PARENT_CHECK = 1.0


def _say(message: str) -> None:
    try:
        os.write(2, f"heartbeat [{os.getpid()}]: {message}\n".encode())
    except OSError:
        pass


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


def run(path: str, token: str, interval: float, parent: int) -> int:
    next_beat = time.monotonic() + interval
    while True:
        if os.getppid() != parent:
            return 0  # the job is gone (we were re-parented)
        wait = min(max(0.0, next_beat - time.monotonic()), _PARENT_CHECK)
        readable, _, _ = select.select([0], [], [], wait)
        if readable and not os.read(0, 512):
            return 0  # the job closed our stdin (release) or died
        if time.monotonic() >= next_beat:
            if not beat(path, token):
                return LOST
            next_beat = time.monotonic() + interval


def main(argv: list[str]) -> int:
    path, token, interval, parent = argv
    return run(path, token, float(interval), int(parent))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
