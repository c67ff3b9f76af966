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
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path

from adaptive_snakemake.errors import LauncherError

log = logging.getLogger("adaptive_snakemake.job.executors")

# Executors whose job gets `tasks` MPI tasks and the MPI launcher (workflow/rules/common.smk:
# _is_mpi): mpi4py and dask-mpi run under it (RANK_EXECUTORS: every rank runs the job),
# ipyparallel starts its engines with it (its job runs once; the engines' world is checked).
RANK_EXECUTORS = ("mpi4py", "dask-mpi")
# The launcher (resources.mpi_launcher) of an ipyparallel job's engines, set by the workflow.
MPI_LAUNCHER_ENV = "ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER"
# "host pid" of the runner, for its engines (they exit if it dies without stopping them).
RUNNER_ENV = "ADAPTIVE_SNAKEMAKE_IPP_RUNNER"
# How long a job waits for an existing dask cluster's scheduler (and its first worker),
# and for a cluster of its own to come up.
CLUSTER_START_SECONDS = 120

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
            "mpi_launcher (profile default-resources) to 'srun --mpi=pmi2' (or your MPI's "
            "type, see `srun --mpi=list`); "
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
    if kind in RANK_EXECUTORS:
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
    """An ipcluster inside the job: a controller beside the runner, and `engines` engines
    started as one MPI world by the job's MPI launcher (`<launcher> -n <engines> ipengine`),
    so that they spread over the allocation's nodes as MPI ranks do."""

    def __init__(self, engines: int):
        import ipyparallel as ipp
        from traitlets.config import Config

        self.launcher = mpi_launcher()
        self.profile_dir = tempfile.mkdtemp(prefix="adaptive-snakemake-ipp-")
        config = Config()
        # Our own entry points: the engines and the controller ignore stop signals (the runner
        # saves, then stops them) and exit if the runner dies without stopping them.
        serve = [sys.executable, "-m", "adaptive_snakemake.job.executors"]
        config.LocalControllerLauncher.controller_cmd = [*serve, "ipcontroller"]
        config.LocalControllerLauncher.stop_seconds_until_kill = 1
        config.MPIEngineSetLauncher.mpi_cmd = self.launcher
        config.MPIEngineSetLauncher.engine_cmd = [*serve, "ipengine"]
        config.MPIEngineSetLauncher.stop_seconds_until_kill = 1
        # The engines of the runner's node watch it (kill -9 of the runner); the launcher
        # passes the environment to every rank (with the controller's connection info).
        config.MPIEngineSetLauncher.environment = {
            RUNNER_ENV: f"{socket.gethostname()} {os.getpid()}"
        }
        self.cluster = ipp.Cluster(
            n=engines,
            profile_dir=self.profile_dir,
            # In a batch job the engines may run on other nodes of the allocation: listen
            # on every interface, reached by this node's name (the connection is signed
            # with the cluster's key).
            controller_ip="*" if _in_batch_job() else "127.0.0.1",
            controller_location=socket.gethostname() if _in_batch_job() else "",
            engine_launcher_class="mpi",
            controller_launcher_class="local",
            log_level=logging.WARNING,
            config=config,
            shutdown_atexit=False,
        )
        self.client = None
        self.engines = engines
        self.world: list[dict] = []
        self._stopping = threading.Event()

    def start(self):
        """The connected client, once every engine has registered and the engines are
        checked to be one MPI world."""
        started = time.monotonic()
        self.cluster.start_controller_sync()
        self.cluster.start_engines_sync(n=self.engines)
        self.client = self.cluster.connect_client_sync()
        self._wait_for_engines(started + CLUSTER_START_SECONDS)
        self.world = self.client[:].apply_sync(engine_world)
        _check_engine_world(self.world, self.engines, self.launcher)
        hosts = sorted({rank["host"] for rank in self.world})
        step = self.world[0]["slurm_step"]
        log.info(
            "ipcluster up: controller and %d engines in %.1f s; the engines are one MPI world "
            "of %d ranks started by `%s -n %d`%s on %s",
            self.engines,
            time.monotonic() - started,
            self.engines,
            shlex.join(self.launcher),
            self.engines,
            f" (SLURM step {step})" if step is not None else "",
            ", ".join(hosts),
        )
        threading.Thread(target=self._watch_engines, daemon=True).start()
        return self.client

    def _watch_engines(self) -> None:
        """An engine that dies (a crash in the function, the OOM killer, a lost node) ends
        its launcher and with it every engine (srun --kill-on-bad-exit, mpiexec), as a dead
        rank ends an MPI job. The learner then stops as on a stop signal (SIGUSR1): it saves
        and the job fails, so that a retry resumes it, instead of waiting for engines until
        its walltime."""
        while not self._stopping.wait(1):
            if not self._launcher_ended() or self._stopping.is_set():
                continue
            log.error(
                "the ipyparallel engines ended while the learner ran (their launcher `%s` "
                "exited: an engine crashed or was killed); stopping the learner so that a "
                "retry resumes it",
                shlex.join(self.launcher),
            )
            os.kill(os.getpid(), signal.SIGUSR1)
            return

    def _engine_set(self):
        return next(iter(self.cluster.engines.values()), None)

    def _launcher_ended(self) -> bool:
        """Whether the engines' launcher process has ended. (Not the launcher's state: it is
        updated by ipyparallel's event loop, which runs only inside its calls.)"""
        import psutil

        engine_set = self._engine_set()
        if engine_set is None or engine_set.process is None:
            return True
        try:
            launcher = engine_set.process  # a psutil.Process
            return not launcher.is_running() or launcher.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    def _wait_for_engines(self, deadline: float) -> None:
        """LauncherError, naming the launcher, if the engines do not all register: the launcher
        ended (wrong flags, too few tasks in the allocation) or the time is up."""
        while len(self.client.ids) < self.engines:
            engine_set = self._engine_set()
            ended = self._launcher_ended()
            if ended or time.monotonic() > deadline:
                output = engine_set.get_output().strip()[-2000:] if engine_set else ""
                why = "the launcher ended" if ended else f"after {CLUSTER_START_SECONDS} s"
                raise LauncherError(
                    f"only {len(self.client.ids)} of {self.engines} ipyparallel engines "
                    f"registered with the controller ({why}). They are started as "
                    f"`{shlex.join(self.launcher)} -n {self.engines} ipengine`: check the "
                    "learner's MPI launcher (mpi_launcher in the profile's default-resources; "
                    "with SLURM e.g. 'srun --mpi=pmi2') "
                    "and that the job has tasks = engines + 1 MPI tasks."
                    + (f" The launcher's output:\n{output}" if output else "")
                )
            time.sleep(0.1)

    def _processes(self) -> tuple[list, list]:
        """(what to signal, what to wait for): the controller, the engines on this node and
        the engines' launcher (mpiexec or srun; its ranks end with it). The launcher is
        signalled only if it is not the engines' ancestor: srun forwards the signal to every
        engine, mpiexec would end on it and kill its engines before they clean up."""
        import psutil

        here = socket.gethostname()
        engines = []
        for rank in self.world:
            if rank["host"] == here:
                with contextlib.suppress(psutil.Error):
                    engines.append(psutil.Process(rank["pid"]))
        processes = engines
        with contextlib.suppress(psutil.Error):
            processes = [psutil.Process(self.cluster.controller.process.pid), *engines]
        engine_set = self._engine_set()
        with contextlib.suppress(psutil.Error, AttributeError):
            launcher = psutil.Process(engine_set.process.pid)
            ancestors = {parent.pid for engine in engines for parent in engine.parents()}
            if launcher.pid in ancestors:
                return processes, [*processes, launcher]
            return [*processes, launcher], [*processes, launcher]
        return processes, processes

    def stop(self) -> None:
        import psutil

        self._stopping.set()
        signalled, waited = [], []
        with contextlib.suppress(Exception):
            signalled, waited = self._processes()
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.abort()  # queued points
            with contextlib.suppress(Exception):
                self.client.close()
        # They ignore TERM (the job's stop signal); STOP_SIGNAL is their own way out: the
        # controller stops its schedulers, the engines their kernels.
        for process in signalled:
            with contextlib.suppress(psutil.Error):
                process.send_signal(STOP_SIGNAL)
        _, alive = psutil.wait_procs(waited, timeout=5)
        for process in alive:  # whatever is left; the launcher's ranks end with it
            with contextlib.suppress(psutil.Error):
                process.kill()
        if self.cluster.controller is not None:  # the controller's schedulers
            with contextlib.suppress(OSError):
                os.killpg(self.cluster.controller.process.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.cluster.stop_cluster_sync()
        import shutil

        shutil.rmtree(self.profile_dir, ignore_errors=True)


def mpi_launcher() -> list[str]:
    """The MPI launcher of the engines: the learner's resources.mpi_launcher, passed by the
    workflow (get_launcher in workflow/rules/common.smk); without the workflow, `mpiexec`."""
    return shlex.split(os.environ.get(MPI_LAUNCHER_ENV) or "mpiexec")


def _in_batch_job() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID"))


def engine_world() -> dict:
    """Run on each engine: where it runs, and the MPI world it belongs to."""
    from mpi4py import MPI

    return {
        "size": MPI.COMM_WORLD.Get_size(),
        "rank": MPI.COMM_WORLD.Get_rank(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_step": os.environ.get("SLURM_STEP_ID"),
    }


def _check_engine_world(world: list[dict], engines: int, launcher: list[str]) -> None:
    """The engines must be one MPI world of `engines` ranks: a launcher that starts them as
    separate programs (srun without --mpi) is misconfigured, as for mpi4py learners."""
    sizes = sorted({rank["size"] for rank in world})
    ranks = sorted(rank["rank"] for rank in world)
    if sizes != [engines] or ranks != list(range(engines)):
        raise LauncherError(
            f"the {engines} ipyparallel engines are not one MPI world (world sizes {sizes}, "
            f"ranks {ranks}): `{shlex.join(launcher)}` started them as separate programs. "
            "With SLURM set mpi_launcher (profile default-resources) to 'srun --mpi=pmi2' "
            "(or your MPI's type, see "
            "`srun --mpi=list`); locally use the mpiexec of the MPI that mpi4py was built with."
        )


def _start_ipcluster(engines: int):
    """Started before the learner lock is taken: a cluster that cannot start is a
    LauncherError (exit 2), not a failure of the learner's code."""
    _workdir_importable()  # the engines inherit it
    cluster = _IPCluster(engines)
    _OWNED_CLUSTERS.append(cluster)
    try:
        return cluster.start(), engines
    except LauncherError:
        raise
    except Exception as error:
        raise LauncherError(
            f"the ipcluster (controller + {engines} engines) did not start: "
            f"{type(error).__name__}: {error}"
        ) from error


def _runner_alive(runner: str) -> bool:
    """False once the runner of this node ("host pid" in RUNNER_ENV) is gone."""
    host, _, pid = runner.partition(" ")
    if host != socket.gethostname():
        return True  # another node: the launcher ends us when a rank there exits
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        pass
    return True


def _serve_ipyparallel(role: str) -> None:
    """`python -m adaptive_snakemake.job.executors ipengine|ipcontroller ARGS`."""
    ignore_stop_signals()
    parent = os.getppid()
    runner = os.environ.get(RUNNER_ENV, "") if role == "ipengine" else ""
    own_profile = None
    if role == "ipengine" and not os.path.isdir(os.environ.get("IPP_PROFILE_DIR", "")):
        # The runner's profile directory is in its node's /tmp: on another node of the
        # allocation, an engine needs one of its own (it finds the controller through
        # $IPP_CONNECTION_INFO, set by ipyparallel's Cluster, not through the files).
        own_profile = tempfile.mkdtemp(prefix="adaptive-snakemake-ipengine-")
        os.environ["IPP_PROFILE_DIR"] = own_profile

    def remove_own_profile():
        if own_profile:
            import shutil

            shutil.rmtree(own_profile, ignore_errors=True)

    def exit_now(*_):
        remove_own_profile()
        if os.getpgid(0) == os.getpid():  # our own group: with the controller's schedulers
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    def exit_with_parent():
        while True:
            time.sleep(1)
            # The runner died (kill -9) without stopping us: the controller is its child; an
            # engine's parent is the launcher's proxy, so an engine watches the runner itself.
            if os.getppid() != parent or (runner and not _runner_alive(runner)):
                if role == "ipcontroller":  # the runner cannot remove its directory any more
                    import shutil

                    shutil.rmtree(os.environ.get("IPP_PROFILE_DIR") or "/nonexistent", True)
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
    try:
        main()
    finally:
        remove_own_profile()


# -- the executor of the learner -----------------------------------------------------------------


def make_executor(kind: str, tasks: int) -> tuple[Executor, int]:
    """An executor and how many points it can evaluate at once."""
    _workdir_importable()
    if kind == "mpi4py":
        from mpi4py import MPI

        from adaptive_snakemake.job.mpi_pool import MPIWorkerPool

        check_mpi_world(mpi_ranks(kind, tasks))
        # The worker ranks run job/mpi_pool.py's loop (the job's launcher starts them there).
        return MPIWorkerPool(MPI.COMM_WORLD), tasks
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
