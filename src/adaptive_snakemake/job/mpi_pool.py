"""The MPI workers of mpi4py learners: rank 0 runs the job, every other rank evaluates points.

    <mpi launcher> -n <tasks + 1> python -m adaptive_snakemake.job.mpi_pool \\
        -m adaptive_snakemake.job ARGS...

Why not mpi4py.futures' MPIPoolExecutor: it gives a worker its next point only after the
worker's result has reached the manager (the worker's `issend` waits for that), so every
point waits for a round trip through the manager's polling thread: ~1 ms a point on the test
machine, 10 % of a 10 ms point, whatever the job queues ahead. Here a worker holds up to
`DEPTH` points: it sends a result without waiting for it to arrive and starts the next point
at once, while the manager tops it up. Messages are pickled by mpi4py, one task per message.
"""

from __future__ import annotations

import os
import pickle
import runpy
import sys
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Executor, Future

# Message tags: rank 0 -> worker: a task or STOP; worker -> rank 0: a result.
TASK, STOP, RESULT = 1, 2, 3
# Points a worker holds at most: the one it evaluates and the next. (The job's loop decides
# how many are in flight in all: one per worker for long points, two for short ones.)
DEPTH = 2
# Longest sleep between two polls of a waiting rank (the manager's thread, an idle worker).
# Short, because a rank that sleeps while a message waits delays a point; rank 0 shares a CPU
# with a worker, so it must not spin either (benchmarks/mpi_efficiency.py).
MAX_BACKOFF_S = float(os.environ.get("ADAPTIVE_SNAKEMAKE_MPI_BACKOFF", 1e-4))


class _Backoff:
    """Sleeps that grow from nothing to MAX_BACKOFF_S while nothing happens."""

    def __init__(self) -> None:
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    def sleep(self) -> None:
        time.sleep(self.delay)
        self.delay = min(MAX_BACKOFF_S, max(1e-6, 2 * self.delay))


class MPIWorkerPool(Executor):
    """An Executor on rank 0 whose points are evaluated by ranks 1 .. size - 1.

    One thread of rank 0 makes every MPI call: it hands queued tasks to the worker holding
    the fewest (at most DEPTH each), and completes the futures as results come back.
    `shutdown` ends this pool; the worker ranks wait for the next one until `stop_workers`.
    """

    def __init__(self, comm) -> None:
        self._comm = comm
        self._workers = range(1, comm.Get_size())
        self._queue: deque = deque()  # (future, payload), not yet handed out
        self._held = {rank: {} for rank in self._workers}  # rank -> {task id: future}
        self._sends: list = []  # requests of sends not known to be complete
        self._next_id = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="mpi-pool", daemon=True)
        self._thread.start()

    @property
    def workers(self) -> int:
        return len(self._workers)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._closing.is_set():
            raise RuntimeError("cannot submit to a pool that was shut down")
        future: Future = Future()
        # Pickled here, not on the worker: a function that cannot be pickled fails its point
        # at once instead of the pool's thread.
        self._queue.append((future, pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            while self._queue:
                future, _ = self._queue.popleft()
                future.cancel()
        self._closing.set()
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        from mpi4py import MPI

        status, backoff = MPI.Status(), _Backoff()
        while True:
            busy = self._receive(MPI, status) | self._hand_out()
            self._sends = [request for request in self._sends if not request.Test()]
            if self._closing.is_set() and not self._queue and not self._in_flight():
                break
            if busy:
                backoff.reset()
            else:
                backoff.sleep()
        MPI.Request.Waitall(self._sends)

    def _in_flight(self) -> int:
        return sum(len(held) for held in self._held.values())

    def _receive(self, MPI, status) -> bool:
        received = False
        while self._comm.iprobe(source=MPI.ANY_SOURCE, tag=RESULT, status=status):
            rank = status.Get_source()
            task, ok, value = self._comm.recv(source=rank, tag=RESULT)
            future = self._held[rank].pop(task)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
            received = True
        return received

    def _hand_out(self) -> bool:
        handed = False
        while self._queue:
            rank = min(self._workers, key=lambda r: len(self._held[r]))
            if len(self._held[rank]) >= DEPTH:
                break
            future, payload = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            task, self._next_id = self._next_id, self._next_id + 1
            self._held[rank][task] = future
            self._sends.append(self._comm.isend((task, payload), dest=rank, tag=TASK))
            handed = True
        return handed


def stop_workers(comm) -> None:
    """Tell every worker rank to exit (after the points it holds)."""
    from mpi4py import MPI

    requests = [comm.isend(None, dest=rank, tag=STOP) for rank in range(1, comm.Get_size())]
    MPI.Request.Waitall(requests)


def serve(comm) -> None:
    """A worker rank: evaluate the tasks rank 0 sends, in order, until STOP."""
    from mpi4py import MPI

    from adaptive_snakemake.job.executors import ignore_stop_signals

    ignore_stop_signals()
    sys.path.insert(0, os.getcwd())  # the user's "module:attribute" from the workflow dir
    status, backoff, sends = MPI.Status(), _Backoff(), []
    while True:
        # Polled, not a blocking receive: MPICH's blocking calls spin, and this rank may
        # share its CPU with rank 0.
        while not comm.iprobe(source=0, tag=MPI.ANY_TAG, status=status):
            backoff.sleep()
        backoff.reset()
        message = comm.recv(source=0, tag=status.Get_tag())
        if status.Get_tag() == STOP:
            break
        task, payload = message
        try:
            fn, args, kwargs = pickle.loads(payload)
            result = (task, True, fn(*args, **kwargs))
        except BaseException as error:  # the point's failure, for the learner to count
            result = (task, False, error)
        sends = [request for request in sends if not request.Test()]
        try:
            sends.append(comm.isend(result, dest=0, tag=RESULT))
        except Exception:  # a value or an error that cannot be pickled
            error = RuntimeError(f"point result could not be sent:\n{traceback.format_exc()}")
            sends.append(comm.isend((task, False, error), dest=0, tag=RESULT))
    MPI.Request.Waitall(sends)


def main(argv: list[str]) -> int:
    """`-m MODULE ARGS...`: rank 0 runs MODULE as __main__, the other ranks serve it."""
    if len(argv) < 2 or argv[0] != "-m":
        sys.exit("usage: python -m adaptive_snakemake.job.mpi_pool -m MODULE [ARGS...]")
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_rank() != 0:
        serve(comm)
        return 0
    sys.argv = [argv[1], *argv[2:]]
    try:
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    # Reached when the job ends normally (a failed job leaves with os._exit, and the MPI
    # launcher ends the other ranks): the workers exit too, or the launcher would wait.
    stop_workers(comm)
    if isinstance(code, str):  # sys.exit("message"), as Python itself would show it
        print(code, file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
