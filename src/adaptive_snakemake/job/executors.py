"""Executors that evaluate the learner's function: mpi4py, process-pool, loky, sequential,
ipyparallel, dask-mpi and dask (an existing cluster given by its scheduler file).

A learner job uses them in two steps. `job_processes(spec)` (in the job's __main__, before
the learner lock) splits a dask-mpi job into its ranks, connects to an existing dask
cluster (a clear error, and no file touched, if none answers), and on leaving stops every
cluster the job started, also after a stop signal or an error. `make_executor` (in the
runner) then gives the executor and how many points it evaluates at once.

Stop signals (qdel, scancel, SLURM's walltime warning) reach every process of a job. The
processes that evaluate points (MPI ranks, pool workers, ipyparallel's engines and
controller, dask-mpi's scheduler and workers) ignore them: the runner must save first, and
then stops them itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path

from adaptive_snakemake.errors import LauncherError

log = logging.getLogger("adaptive_snakemake.job.executors")

# Executors whose job runs under the MPI launcher (workflow/rules/common.smk: _is_mpi).
MPI_EXECUTORS = ("mpi4py", "dask-mpi")
# How long a job waits for an existing dask cluster's scheduler (and its first worker),
# and for a cluster of its own to come up.
CLUSTER_START_SECONDS = 120

# mpi4py.futures' polling backoff for every rank (MPI4PY_FUTURES_BACKOFF overrides it). With
# 10 ms points, 1e-4 raised efficiency from 81% to 92% against mpi4py's 1 ms; the manager,
# which shares a CPU with a worker, then spends a few % of that CPU on polling
# (benchmarks/mpi_efficiency.py).
MPI_BACKOFF_S = 0.0001
DASK_CONNECT_SECONDS = float(os.environ.get("ADAPTIVE_SNAKEMAKE_DASK_CONNECT_SECONDS", 20))

# Set by job_processes, used by make_executor: clusters this job connected to or started.
_PREPARED: dict[str, object] = {}
_OWNED_CLUSTERS: list = []  # objects with a stop() method, stopped when the job ends
# How the runner stops ipyparallel's engines and controller, which ignore the stop signals.
STOP_SIGNAL = signal.SIGUSR2


def mpi_ranks(executor: str, tasks: int) -> int:
    """How many ranks the MPI launcher starts for a learner whose job holds `tasks` CPUs.

    mpi4py: a worker on every CPU, plus the manager (rank 0), which only hands out points
    and shares a CPU with a worker (SLURM: srun --overcommit; mpiexec oversubscribes).
    dask-mpi: `tasks` ranks (scheduler, client, workers).
    """
    return tasks + 1 if executor == "mpi4py" else tasks


def check_mpi_world(expected_ranks: int) -> None:
    """Fail loudly if the launcher did not give one MPI world of the ranks we asked for.

    `srun` without `--mpi=...` silently starts N separate processes of world size 1:
    each would run the whole learner on its own and race for its files.
    """
    from mpi4py import MPI

    size = MPI.COMM_WORLD.Get_size()
    if size != expected_ranks:
        raise LauncherError(
            f"MPI world size is {size} but this learner asked for {expected_ranks} ranks. "
            "The launcher started the ranks as separate programs: with SLURM set "
            "resources mpi to 'srun --mpi=pmi2' (or your MPI's type, see `srun --mpi=list`); "
            "locally use the mpiexec of the MPI that mpi4py was built with."
        )


def ignore_stop_signals() -> None:
    """Worker initializer: a scheduler's SIGTERM (qdel, scancel, walltime) reaches every
    process of the job. Workers ignore it, so that rank 0 / the pool owner saves the
    learner and exits first; otherwise a dying worker makes mpiexec kill rank 0 unsaved."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)


def _workdir_importable() -> str:
    """Workers must import the user's module ("module:attribute") from the workflow directory."""
    workdir = os.getcwd()
    current = os.environ.get("PYTHONPATH", "")
    if workdir not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = workdir if not current else f"{workdir}{os.pathsep}{current}"
    return workdir


# -- the job's extra processes -----------------------------------------------------------------


@contextlib.contextmanager
def job_processes(spec):
    """Around the whole learner job. Yields True in the process that runs the learner.

    dask-mpi: rank 0 becomes the scheduler and ranks 2.. the workers; they block here until
    the runner (rank 1) is done, and get False. dask: connects to the scheduler of
    `spec.scheduler_file` first (LauncherError if none answers: nothing written yet).
    On leaving, every cluster the job started or joined is stopped or left.
    Raises LauncherError for a wrong MPI world.
    """
    kind = spec.executor
    if kind in MPI_EXECUTORS:
        check_mpi_world(mpi_ranks(kind, spec.tasks))
    try:
        if kind == "dask-mpi":
            if not _start_dask_mpi(spec.tasks):
                yield False  # scheduler or worker rank: its cluster has closed
                return
        elif kind == "dask":
            _PREPARED["dask"] = _connect_dask(spec.scheduler_file)
        elif kind == "ipyparallel":
            _PREPARED["ipyparallel"] = _start_ipcluster(spec.tasks - 1)
        yield True
    finally:
        stop_clusters()


def stop_clusters() -> None:
    """Stop every cluster this process started (and leave the ones it joined)."""
    while _OWNED_CLUSTERS:
        cluster = _OWNED_CLUSTERS.pop()
        try:
            cluster.stop()
        except Exception as error:  # stopping must never hide the job's own outcome
            log.warning("stopping %s failed: %r", type(cluster).__name__, error)
    _PREPARED.clear()


def _quiet_dask() -> None:
    """dask logs every connection at INFO; the job's log is for the learner."""
    for name in ("distributed", "dask_mpi"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _start_dask_mpi(tasks: int) -> bool:
    """dask_mpi.initialize, as ESPEI recommends (memory_limit=0: the batch system, not dask,
    polices memory; dask would otherwise pause or kill workers). True on rank 1 (the client)."""
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    if rank != 1:
        ignore_stop_signals()  # the runner on rank 1 saves first, then closes the cluster
    import dask_mpi

    _quiet_dask()

    is_client = dask_mpi.initialize(
        nthreads=1,
        memory_limit=0,
        dashboard=False,  # jobs share nodes: no fixed port
        exit=False,
    )
    if not is_client:
        return False
    from distributed import Client

    client = Client()  # dask_mpi set the scheduler address in dask's config
    _OWNED_CLUSTERS.append(_DaskMPICluster(client))
    workers = tasks - 2
    try:
        client.wait_for_workers(workers, timeout=CLUSTER_START_SECONDS)
    except (OSError, TimeoutError) as error:
        raise LauncherError(
            f"dask-mpi: {workers} worker(s) did not join the scheduler within "
            f"{CLUSTER_START_SECONDS} s ({type(error).__name__}: {error})"
        ) from None
    _PREPARED["dask-mpi"] = (client, workers)
    return True


class _DaskMPICluster:
    """The dask cluster on this job's own MPI ranks: stopped with the job."""

    def __init__(self, client):
        self.client = client

    def stop(self) -> None:
        from dask_mpi import send_close_signal

        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        send_close_signal()  # the scheduler closes and with it the workers: ranks 0, 2.. exit


def read_scheduler_file(path: str) -> str:
    """The scheduler address in a dask scheduler file; ValueError says what is wrong."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(
            f"scheduler file {path} does not exist: start the dask cluster first "
            "(e.g. `mpiexec -n 4 dask-mpi --scheduler-file PATH --memory-limit 0`)"
        ) from None
    except OSError as error:
        raise ValueError(f"scheduler file {path} cannot be read: {error}") from None
    try:
        address = json.loads(text)["address"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"{path} is not a dask scheduler file (JSON with an 'address'), as written by "
            "`dask-mpi --scheduler-file` or Client.write_scheduler_file"
        ) from None
    if not isinstance(address, str):
        raise ValueError(f"{path}: 'address' is {address!r}, not a scheduler address")
    return address


def _connect_dask(scheduler_file: str):
    """A client of the user's running dask cluster, and its worker threads; LauncherError if
    no scheduler answers (a stale file from a cluster that has ended)."""
    try:
        address = read_scheduler_file(scheduler_file)
    except ValueError as error:
        raise LauncherError(str(error)) from None
    from distributed import Client

    _quiet_dask()
    try:
        client = Client(scheduler_file=scheduler_file, timeout=f"{DASK_CONNECT_SECONDS}s")
    except (OSError, TimeoutError) as error:
        raise LauncherError(
            f"no dask scheduler answers at {address} (from {scheduler_file}) within "
            f"{DASK_CONNECT_SECONDS} s: the file is stale or the cluster is not up. "
            f"Start it again, or fix scheduler_file. ({type(error).__name__}: {error})"
        ) from None
    _OWNED_CLUSTERS.append(_JoinedDask(client))
    try:
        client.wait_for_workers(1, timeout=DASK_CONNECT_SECONDS)
    except (OSError, TimeoutError):
        raise LauncherError(
            f"the dask scheduler at {address} (from {scheduler_file}) has no workers after "
            f"{DASK_CONNECT_SECONDS} s"
        ) from None
    threads = sum(client.nthreads().values())
    log.info("joined the dask cluster at %s: %d worker threads", address, threads)
    return client, threads


class _JoinedDask:
    """A cluster the user runs: we only close our client (its pending points are cancelled)."""

    def __init__(self, client):
        self.client = client

    def stop(self) -> None:
        self.client.close(timeout=10)


class _DaskExecutor(Executor):
    """concurrent.futures on a dask client. pure=False: a point evaluated again after an
    error (point_retries) must run again, not return dask's cached error."""

    def __init__(self, client):
        self.client = client
        self._futures: set = set()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        dask_future = self.client.submit(fn, *args, pure=False, **kwargs)
        future: Future = Future()
        future.set_running_or_notify_cancel()
        self._futures.add(dask_future)

        def done(finished):
            self._futures.discard(finished)
            if future.done():
                return
            try:
                error = finished.exception()
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(finished.result())
            except BaseException as other:  # cancelled or lost
                with contextlib.suppress(Exception):
                    future.set_exception(other)

        dask_future.add_done_callback(done)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pending = list(self._futures)
        if pending:
            with contextlib.suppress(Exception):
                self.client.cancel(pending)
        self._futures.clear()


# -- ipyparallel ---------------------------------------------------------------------------------


class _IPCluster:
    """An ipcluster inside the job: a controller and `engines` engines, local processes."""

    def __init__(self, engines: int):
        import ipyparallel as ipp
        from traitlets.config import Config

        self.profile_dir = tempfile.mkdtemp(prefix="adaptive-snakemake-ipp-")
        config = Config()
        # Our own entry points: the engines and the controller ignore stop signals (the runner
        # saves, then stops them) and exit if the runner dies without stopping them.
        serve = [sys.executable, "-m", "adaptive_snakemake.job.executors"]
        config.LocalControllerLauncher.controller_cmd = [*serve, "ipcontroller"]
        config.LocalEngineSetLauncher.engine_cmd = [*serve, "ipengine"]
        config.LocalControllerLauncher.stop_seconds_until_kill = 1
        config.LocalEngineLauncher.stop_seconds_until_kill = 1
        self.cluster = ipp.Cluster(
            n=engines,
            profile_dir=self.profile_dir,
            controller_ip="127.0.0.1",
            engine_launcher_class="local",
            controller_launcher_class="local",
            log_level=logging.WARNING,
            config=config,
            shutdown_atexit=False,
        )
        self.client = None
        self.engines = engines

    def start(self):
        """The connected client, once every engine has registered."""
        started = time.monotonic()
        self.client = self.cluster.start_and_connect_sync(n=self.engines, activate=False)
        self.client.wait_for_engines(self.engines, timeout=CLUSTER_START_SECONDS)
        log.info(
            "ipcluster up: controller and %d engines in %.1f s",
            self.engines,
            time.monotonic() - started,
        )
        return self.client

    def _process_groups(self) -> list[int]:
        """The controller and each engine lead a process group of their own (with the
        controller's schedulers in it)."""
        launchers = [self.cluster.controller]
        for engine_set in (self.cluster.engines or {}).values():
            launchers.extend(getattr(engine_set, "launchers", {}).values())
        return [launcher.process.pid for launcher in launchers if launcher is not None]

    def stop(self) -> None:
        groups = []
        with contextlib.suppress(Exception):
            groups = self._process_groups()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.abort()  # queued points
            with contextlib.suppress(Exception):
                self.client.close()
        # They ignore TERM (the job's stop signal); STOP_SIGNAL is their own way out: the
        # controller stops its schedulers, the engines their kernels.
        import psutil

        processes = []
        for pid in groups:
            with contextlib.suppress(psutil.Error):
                processes.append(psutil.Process(pid))
                processes[-1].send_signal(STOP_SIGNAL)
        psutil.wait_procs(processes, timeout=5)
        for pid in groups:  # whatever is left, the controller's schedulers included
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.cluster.stop_cluster_sync()
        import shutil

        shutil.rmtree(self.profile_dir, ignore_errors=True)


def _start_ipcluster(engines: int):
    """Started before the learner lock is taken: a cluster that cannot start is a
    LauncherError (exit 2), not a failure of the learner's code."""
    _workdir_importable()  # the engines inherit it
    cluster = _IPCluster(engines)
    _OWNED_CLUSTERS.append(cluster)
    try:
        return cluster.start(), engines
    except Exception as error:
        raise LauncherError(
            f"the ipcluster (controller + {engines} engines) did not start: "
            f"{type(error).__name__}: {error}"
        ) from error


def _serve_ipyparallel(role: str) -> None:
    """`python -m adaptive_snakemake.job.executors ipengine|ipcontroller ARGS`."""
    ignore_stop_signals()
    parent = os.getppid()

    def exit_now(*_):
        if os.getpgid(0) == os.getpid():  # our own group: with the controller's schedulers
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    def exit_with_parent():
        while True:
            time.sleep(1)
            if os.getppid() != parent:  # the runner died (kill -9) without stopping us
                exit_now()

    threading.Thread(target=exit_with_parent, daemon=True).start()
    sys.argv[0] = role
    if role == "ipengine":
        # Its nanny (a process of its own session) would outlive a stop: not needed here.
        sys.argv.append("--IPEngine.enable_nanny=False")
        from ipyparallel.engine.app import IPEngine as App
        from ipyparallel.engine.app import main

        def init_signal(app):
            signal.signal(STOP_SIGNAL, app._signal_stop)
    else:
        from ipyparallel.controller.app import IPController as App
        from ipyparallel.controller.app import main

        def init_signal(app):
            # Its schedulers ignore TERM too, so its own shutdown would wait for them; the
            # runner has saved by now and nothing of the controller's is worth keeping.
            signal.signal(STOP_SIGNAL, exit_now)

    App.init_signal = init_signal  # TERM and INT stay ignored
    main()


# -- the executor of the learner -----------------------------------------------------------------


def make_executor(kind: str, tasks: int) -> tuple[Executor, int]:
    """An executor and how many points it can evaluate at once."""
    workdir = _workdir_importable()
    if kind == "mpi4py":
        from mpi4py.futures import MPIPoolExecutor

        check_mpi_world(mpi_ranks(kind, tasks))
        # The manager and the workers poll for messages, sleeping up to `backoff` seconds in
        # between (mpi4py's default 1 ms). Passed as an option, it reaches every rank.
        backoff = float(os.environ.get("MPI4PY_FUTURES_BACKOFF", MPI_BACKOFF_S))
        # main=False: the workers need the learner's function, not this job's __main__ (the
        # runner, with adaptive and numpy), whose import delayed the first point by seconds.
        executor = MPIPoolExecutor(
            path=[workdir], initializer=ignore_stop_signals, backoff=backoff, main=False
        )
        return executor, tasks
    if kind == "process-pool":
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=tasks, initializer=ignore_stop_signals), tasks
    if kind == "loky":
        import loky

        return loky.get_reusable_executor(max_workers=tasks, initializer=ignore_stop_signals), tasks
    if kind == "sequential":
        from adaptive.runner import SequentialExecutor

        return SequentialExecutor(), 1
    if kind == "ipyparallel":
        if kind not in _PREPARED:  # the runner without the job's __main__ (tests, notebooks)
            _PREPARED[kind] = _start_ipcluster(tasks - 1)
        client, engines = _PREPARED[kind]
        return client.load_balanced_view().executor, engines
    if kind in ("dask-mpi", "dask"):
        if kind not in _PREPARED:
            raise LauncherError(
                f"executor {kind}: no dask cluster; the job's __main__ (job_processes) "
                "starts or joins it"
            )
        client, capacity = _PREPARED[kind]
        return _DaskExecutor(client), capacity
    raise ValueError(f"unknown executor {kind!r}")


def shutdown(executor: Executor) -> None:
    """Drop queued evaluations and wait only for the running ones (a cluster the job started
    is stopped by job_processes)."""
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except TypeError:  # adaptive's SequentialExecutor has no cancel_futures (nothing is queued)
        executor.shutdown(wait=True)
    stop_clusters()


if __name__ == "__main__":
    _serve_ipyparallel(sys.argv.pop(1))
