"""The in-job runner: resume a job's learners from their checkpoints and run them to their
goals (one learner, or the learners of a pack sharing the job's workers: job/loop.py).

The loop is ours rather than adaptive's Runner so that saving is under our control:
a failed save raises, a signal saves at once, and the goal counts time across attempts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_json
from adaptive_snakemake.job.bookkeeping import (
    clear_code_failure,
    code_failures_this_run,
    is_walltime_stop,
    read_meta,
    record_code_failure,
)
from adaptive_snakemake.job.checkpoint import restore_learner, save_learner
from adaptive_snakemake.job.goals import learner_loss, learner_npoints
from adaptive_snakemake.job.learners import build_learner
from adaptive_snakemake.job.lock import LockLost
from adaptive_snakemake.job.loop import Outcome, share_workers
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.metrics.reporter import open_reporter
from adaptive_snakemake.results.result import Result
from adaptive_snakemake.specs.parse import LearnerSpec

log = logging.getLogger("adaptive_snakemake.job.runner")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopRequested(Exception):
    """A signal asked the job to stop; the learner is saved and the job exits non-zero."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalFlag:
    def __init__(self):
        self.signum: int | None = None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def raise_if_set(self) -> None:
        if self.signum is not None:
            raise StopRequested(self.signum)


def _inherited(spec: LearnerSpec, files: LearnerFiles, meta: dict | None, log) -> dict:
    """What this attempt takes over from earlier ones: attempts and elapsed time.

    The bookkeeping belongs to the checkpoint it describes. Without a checkpoint there is
    no computed time to inherit (a duration goal must not be "reached" with 0 points); a
    checkpoint of another definition is set aside and the learner starts over; a
    checkpoint without (readable) bookkeeping is the user's data and is continued.
    """
    checkpoint = files.checkpoint
    same_definition = meta is not None and meta.get("fingerprint") == spec.fingerprint
    if not checkpoint.exists():
        if meta is not None and meta.get("npoints"):
            log.warning(
                "%s is gone (moved aside?) while %s says it held %s points: starting from "
                "zero, counting time from zero",
                checkpoint,
                files.meta,
                meta.get("npoints"),
            )
        if not same_definition:
            return {}
        return {key: meta.get(key, 0) for key in ("attempts", "timeouts")}
    if meta is None:
        log.warning(
            "%s has no readable bookkeeping (%s): continuing it; attempts and time count "
            "from this attempt",
            checkpoint,
            files.meta,
        )
        return {}
    if not same_definition:
        aside = checkpoint.with_name(f"{checkpoint.name}.superseded-{int(time.time())}")
        checkpoint.rename(aside)
        log.warning(
            "the learner's definition changed since its checkpoint was written; "
            "starting from zero, old checkpoint kept as %s",
            aside,
        )
        return {}
    return meta


class LearnerRun:
    """One attempt at one learner: restore, loop to the goal, save, write results."""

    def __init__(
        self,
        spec: LearnerSpec,
        files: LearnerFiles,
        reporter=None,
        lock=None,
        runtime_minutes: float | None = None,
        logger: logging.Logger | None = None,
    ):
        self.log = logger or log  # a pack's learner: also into the learner's own log
        self.spec = spec
        self.files = files
        self.runtime_minutes = runtime_minutes  # the job's walltime, to recognise timeouts
        self.reporter = reporter
        self.failed_reports = 0
        self._point_failures: dict[str, int] = {}
        self.lock = lock
        self.learner = build_learner(spec)
        inherited = _inherited(spec, files, read_meta(files.meta), self.log)
        self.restored_npoints = restore_learner(self.learner, files.checkpoint)
        self.saved_npoints = self.restored_npoints  # what the checkpoint on disk holds
        if not files.checkpoint.exists() and spec.import_from:
            self._import_data(Path(spec.import_from))
        self.elapsed_before = float(inherited.get("elapsed", 0.0))
        self.attempts = int(inherited.get("attempts", 0)) + 1
        self.timeouts = int(inherited.get("timeouts", 0))
        self.started = time.monotonic()
        self._write_meta()
        self.log.info(
            "attempt %d of %s: restored %d points, %.1f s computed before",
            self.attempts,
            spec.name,
            self.restored_npoints,
            self.elapsed_before,
        )

    def _import_data(self, path: Path) -> None:
        """import_data: start from the user's existing data file (read, never modified)."""
        if not path.exists():
            self.log.info("no data to import at %s: starting from no points", path)
            return
        self.restored_npoints = restore_learner(self.learner, path)
        self.log.info("imported %d points from %s", self.restored_npoints, path)

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _check_lock(self) -> None:
        """Raises LockLost unless the lock file still holds our token: a job that lost its
        lock writes no checkpoint and no result."""
        if self.lock is not None:
            self.lock.verify()

    def _write_meta(self) -> None:
        self._check_lock()
        meta = {
            "name": self.spec.name,
            "fingerprint": self.spec.fingerprint,
            "attempts": self.attempts,
            "timeouts": self.timeouts,
            "elapsed": self.elapsed,
            "npoints": learner_npoints(self.learner),
            "saved_at": time.time(),
            "spec": self.spec.to_dict(),  # what load_learner rebuilds an unfinished one from
        }
        atomic_write_json(self.files.meta, meta)

    def save(self) -> None:
        """Checkpoint now. Raises if it cannot be written: losing data silently is worse."""
        self._check_lock()
        started = time.monotonic()
        npoints = learner_npoints(self.learner)
        self._report("saving")
        try:
            save_learner(self.learner, self.files.checkpoint)
            self._write_meta()
        except BaseException as error:
            self.log.error(
                "saving %d points failed (%s: %s); %s still holds %d points",
                npoints,
                type(error).__name__,
                error,
                self.files.checkpoint,
                self.saved_npoints,
            )
            raise
        self.saved_npoints = npoints
        self.log.info("saved %d points in %.2f s", npoints, time.monotonic() - started)

    def _report(self, status: str, rate: float = 0.0) -> None:
        """Send a metrics record; never lets metrics fail or stop a save or the learner."""
        if self.reporter is None:
            return
        try:
            loss = learner_loss(self.learner)
            self.reporter.send(
                {
                    "elapsed": self.elapsed,
                    "npoints": learner_npoints(self.learner),
                    "loss": loss if math.isfinite(loss) else None,
                    "rate": rate,
                    "status": status,
                }
            )
        except Exception as error:
            self.failed_reports += 1
            if self.failed_reports == 1:
                self.log.warning("a metrics record could not be sent (%r); going on", error)

    def begin(self) -> None:
        """The learner starts taking points (job/loop.py)."""
        self._last_save = self._last_report = time.monotonic()
        self._points_at_report = learner_npoints(self.learner)
        self._report("running")

    def tick(self, now: float) -> None:
        """Between results: the checkpoint and the metrics record when they are due."""
        if now - self._last_save >= self.spec.save_interval:
            self.save()
            self._last_save = time.monotonic()
        if now - self._last_report >= self.spec.log_interval:
            npoints = learner_npoints(self.learner)
            rate = (npoints - self._points_at_report) / (now - self._last_report)
            self._report("running", rate)
            self._points_at_report, self._last_report = npoints, now

    def check_lock_if_lost(self) -> None:
        """Raises LockLost once the heartbeat saw another job take the lock (cheap)."""
        if self.lock is not None and self.lock.lost:
            self._check_lock()

    def run(self, flag: _SignalFlag | None = None) -> str:
        """Run this learner alone to its goal; returns which goal was reached. Raises
        StopRequested on a signal, LockLost, or what the learner raised (after saving)."""
        outcome = share_workers([self], flag)[self]
        if outcome.kind == "reached":
            return outcome.reached
        if outcome.kind == "stopped":
            raise StopRequested(outcome.signum)
        raise outcome.error

    def count_point_failure(self, point, error: Exception) -> None:
        key = repr(point)  # points may be unhashable (SequenceLearner's values)
        failures = self._point_failures.get(key, 0) + 1
        if failures > self.spec.point_retries:
            raise error
        self._point_failures[key] = failures
        log.warning(
            "point %s raised %s: %s; evaluating it again (%d of %d retries)",
            key,
            type(error).__name__,
            error,
            failures,
            self.spec.point_retries,
        )

    def write_results(self, reached: str) -> Result:
        self._check_lock()
        save_learner(self.learner, self.files.learner_pickle)
        loss = learner_loss(self.learner)
        result = Result(
            name=self.spec.name,
            sweep=self.spec.sweep,
            learner=self.spec.learner,
            learner_kwargs=self.spec.learner_kwargs,
            params=self.spec.params,
            npoints=learner_npoints(self.learner),
            loss=loss if math.isfinite(loss) else None,
            elapsed=round(self.elapsed, 3),
            goal=self.spec.goal,
            reached=reached,
            attempts=self.attempts,
            restored_npoints=self.restored_npoints,
            fingerprint=self.spec.fingerprint,
            definition=self.spec.definition,
        )
        result.write(self.files.result)
        self._report("done")
        return result


def run_learners(
    members: list[tuple[LearnerSpec, LearnerFiles, object]],
    runtime_minutes: float | None = None,
    own_logs: bool = False,
) -> int:
    """Run a job's learners ((spec, files, lock) each) to their goals and write their
    results; returns the job's exit code: 0 when every learner reached its goal, 128 +
    signal when a stop signal ended the job, else 1.

    On a signal or a failing function a learner is saved first, so a retry resumes; the
    other learners of a pack go on. Metrics go to the collector (if one runs) and to each
    learner's log, tagged with its attempt. `own_logs`: each learner's messages also go to
    its log file (a pack; a lone learner's job writes its log through its stderr).
    """
    flag = _SignalFlag()
    flag.install()
    codes = []
    runs = []
    with contextlib.ExitStack() as stack:
        for index, (spec, files, lock) in enumerate(members):
            logger = log
            if own_logs:
                logger = stack.enter_context(_learner_logger(index, spec.name, files.log))
            try:
                if _refused(spec, files, logger):
                    codes.append(1)
                    continue
                run = LearnerRun(
                    spec, files, lock=lock, runtime_minutes=runtime_minutes, logger=logger
                )
            except Exception:
                logger.exception("%s cannot start; its files are unchanged", spec.name)
                codes.append(1)
                continue
            run.reporter = stack.enter_context(
                open_reporter(
                    name=spec.name,
                    attempt=run.attempts,
                    log_file=files.log,
                    workdir=Path.cwd(),
                    log_interval=spec.log_interval,
                )
            )
            runs.append(run)
        outcomes = share_workers(runs, flag)
        codes.extend(_finish(run, outcomes[run]) for run in runs)
    stops = [code for code in codes if code >= 128]
    return stops[0] if stops else max(codes, default=0)


def run_to_goal(
    spec: LearnerSpec, files: LearnerFiles, lock=None, runtime_minutes: float | None = None
) -> int:
    """Run one learner to its goal and write its results; returns the job's exit code."""
    return run_learners([(spec, files, lock)], runtime_minutes)


class _Prefixed(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"{self.extra['name']}: {msg}", kwargs


@contextlib.contextmanager
def _learner_logger(index: int, name: str, path: Path):
    """A pack's learner logs into its own file and, prefixed with its name, the job's."""
    logger = logging.getLogger(f"adaptive_snakemake.learners.{index}")
    logger.setLevel(logging.INFO)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    logger.addHandler(handler)
    try:
        yield _Prefixed(logger, {"name": name})
    finally:
        logger.removeHandler(handler)
        handler.close()


def _refused(spec: LearnerSpec, files: LearnerFiles, log) -> bool:
    """A learner whose function raised in this snakemake run more than `retries_on_error`
    times is not started again: a retry would only repeat the error."""
    failures, record = code_failures_this_run(files.failure)
    if failures <= spec.retries_on_error:
        return False
    # Snakemake empties the job's log for every attempt: repeat the traceback here.
    log.error(
        "not retried: the learner's function raised in attempt %s of this run, and "
        "retries_on_error is %d. Fix the function and rerun snakemake: the learner "
        "continues from its checkpoint. The error (also in %s):\n%s",
        record.get("attempt"),
        spec.retries_on_error,
        files.failure,
        record.get("traceback") or record.get("error"),
    )
    return True


def _finish(run: LearnerRun, outcome: Outcome) -> int:
    """Write what the learner's outcome calls for; returns its exit code."""
    log = run.log
    if outcome.kind == "lost":
        log.error("%s", outcome.error)
        return 1
    if outcome.kind == "stopped":
        # saved_npoints: what is on disk, also if the save on the signal failed
        log.warning(
            "received %s: saved %d points; exiting so a retry resumes",
            signal.Signals(outcome.signum).name,
            run.saved_npoints,
        )
        if is_walltime_stop(time.monotonic() - run.started, run.runtime_minutes):
            run.timeouts += 1  # the retry gets more walltime (workflow: get_runtime)
            with contextlib.suppress(LockLost):
                run._write_meta()
            log.warning("stopped by the walltime (timeout %d of this learner)", run.timeouts)
        run._report("failed")
        return 128 + outcome.signum
    if outcome.kind == "failed":
        log.error(
            "the learner failed; the checkpoint holds %d points:\n%s",
            run.saved_npoints,
            outcome.traceback or repr(outcome.error),
        )
        failures = record_code_failure(run.files.failure, run.attempts, outcome.error)
        retry = "will be retried" if failures <= run.spec.retries_on_error else "is not retried"
        log.error(
            "code failure %d of this run: the learner %s (retries_on_error: %d)",
            failures,
            retry,
            run.spec.retries_on_error,
        )
        run._report("failed")
        return 1
    clear_code_failure(run.files.failure)
    try:
        result = run.write_results(outcome.reached)
    except LockLost as lost:
        log.error("%s", lost)
        return 1
    log.info(
        "goal %s reached: %d points, loss %s, %.1f s over %d attempt(s)",
        outcome.reached,
        result.npoints,
        result.loss,
        result.elapsed,
        result.attempts,
    )
    return 0
