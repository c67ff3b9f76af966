"""The in-job loop: the learners of one job (one, or a pack) share the job's workers.

Free workers go to the learner with the fewest points done and in flight, so the learners
of a pack advance together; a learner that reaches its goal takes no more workers and the
others get them. Each learner keeps its own goal, checkpoint, save and report intervals,
point retries and outcome: one learner's failure or lost lock ends that learner only.

Why not adaptive's BalancingLearner, which shares workers among learners the same way:
it refuses learners of different types (a sweep built in Python may mix them) and its
strategies take the first point a member offers, failing when a member has none to give
right now (a SequenceLearner whose last points are all in flight). Choosing by points done
is its "npoints" strategy.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass

from adaptive_snakemake.job.executors import make_executor, shutdown
from adaptive_snakemake.job.goals import goal_reached, learner_npoints
from adaptive_snakemake.job.lock import LockLost

log = logging.getLogger("adaptive_snakemake.job.loop")

# How long the loop waits for a result before it looks at signals, saves and reports.
_POLL_SECONDS = 0.2
# While points take less than this (wall time per point and worker, so far in this job),
# every worker gets a second point queued behind the one it evaluates: it starts it the
# moment it returns the first, instead of idling while the result travels back and the
# learner tells and asks (~1-2 ms a point: 10-15 % of a 10 ms point). Longer points are
# asked for one per worker, so that each is chosen with every result known and none is
# queued in vain when the goal is reached.
QUEUE_AHEAD_BELOW_S = 0.1


@dataclass
class Outcome:
    """How one learner's part of the job ended."""

    kind: str  # "reached" | "stopped" | "failed" | "lost"
    reached: str | None = None  # the goal met ("npoints", ..., "exhausted")
    signum: int | None = None  # stopped: the signal
    error: BaseException | None = None  # failed: what raised; lost: the LockLost
    traceback: str | None = None


def share_workers(runs: list, flag=None) -> dict:
    """Run `runs` (LearnerRun) to their goals on one executor; {run: Outcome}.

    The executor is the first learner's (the learners of a pack share one sweep's settings).
    Stop signals (`flag`) save every running learner and end them all as "stopped".
    """
    outcomes: dict = {}
    active: list = []
    pending: dict = {}  # future -> (run, point); futures of ended runs are let finish

    def end(run, outcome: Outcome) -> None:
        active.remove(run)
        for future, (owner, _) in list(pending.items()):
            if owner is run and future.cancel():
                del pending[future]
        if outcome.kind in ("reached", "failed"):
            try:
                run.save()  # the final checkpoint; a failure is saved so that a retry resumes
            except LockLost as lost:
                outcome = Outcome("lost", error=lost)
            except Exception as error:
                if outcome.kind == "reached":
                    outcome = Outcome("failed", error=error, traceback=traceback.format_exc())
        outcomes[run] = outcome

    def fail(run, error: BaseException) -> None:
        if isinstance(error, LockLost):
            end(run, Outcome("lost", error=error))
        else:
            end(run, Outcome("failed", error=error, traceback=traceback.format_exc()))

    for run in runs:
        active.append(run)
        try:
            reached = goal_reached(run.spec.goal, run.learner, run.elapsed)
        except Exception as error:
            fail(run, error)
            continue
        if reached:
            end(run, Outcome("reached", reached=reached))  # nothing to compute
    if not active:
        return outcomes

    spec = active[0].spec
    executor, capacity = make_executor(spec.executor, spec.tasks)
    for run in active:
        run.begin()
    started, returned = time.monotonic(), 0
    try:
        while active:
            if flag is not None:
                flag.raise_if_set()
            for run in list(active):
                try:
                    run.check_lock_if_lost()
                    reached = goal_reached(run.spec.goal, run.learner, run.elapsed)
                except Exception as error:
                    fail(run, error)
                    continue
                if reached:
                    end(run, Outcome("reached", reached=reached))
            limit = _in_flight_limit(spec.executor, capacity, returned, started)
            asked_out = _hand_out(active, pending, executor, limit, fail)
            busy = {run for run, _ in pending.values()}
            for run in [r for r in active if r in asked_out and r not in busy]:
                end(run, Outcome("reached", reached="exhausted"))  # nothing left to ask for
            if not pending:
                continue
            finished, _ = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            returned += len(finished)
            for future in finished:
                run, point = pending.pop(future)
                if run not in active:
                    continue  # its learner has ended: the value is not needed
                try:
                    value = future.result()
                except Exception as error:
                    try:
                        # A point that fails now and then must not cost the run: evaluate it
                        # again, point_retries times, before it is a code failure.
                        run.count_point_failure(point, error)
                    except Exception as final:
                        fail(run, final)
                        continue
                    pending[executor.submit(run.learner.function, point)] = (run, point)
                    continue
                try:
                    run.learner.tell(point, value)
                except Exception as error:
                    fail(run, error)
            now = time.monotonic()
            for run in list(active):
                try:
                    run.tick(now)  # due saves and metrics records
                except Exception as error:
                    fail(run, error)
    except BaseException as stop:
        for future in pending:
            future.cancel()
        for run in list(active):
            try:
                run.save()
            except Exception:
                pass  # save() logged what the checkpoint still holds
        signum = getattr(stop, "signum", None)
        if signum is None:
            raise  # not a stop signal: a bug of ours; everything is saved
        for run in list(active):
            outcomes[run] = Outcome("stopped", signum=signum)
        active.clear()
        return outcomes
    for future in pending:
        future.cancel()
    shutdown(executor)
    return outcomes


def _in_flight_limit(kind: str, capacity: int, returned: int, started: float) -> int:
    """How many points may be in flight: one per worker, two while points are short."""
    if kind == "sequential" or not returned:  # (sequential evaluates as it is given a point)
        return capacity
    seconds_per_point = (time.monotonic() - started) * capacity / returned
    return 2 * capacity if seconds_per_point < QUEUE_AHEAD_BELOW_S else capacity


def _enough(run, in_flight: int) -> bool:
    """The points in flight complete the learner's npoints goal: asking for more would
    compute points past its goal."""
    npoints = run.spec.goal.get("npoints")
    return npoints is not None and learner_npoints(run.learner) + in_flight >= npoints


def _hand_out(active, pending, executor, limit, fail) -> set:
    """Fill the free places, fewest points (done and in flight) first; returns the
    learners that were asked and had no point to give."""
    in_flight = Counter(run for run, _ in pending.values())
    free = limit - len(pending)
    asked_out: set = set()  # learners with no point to give right now
    while free > 0:
        candidates = [
            run for run in active if run not in asked_out and not _enough(run, in_flight[run])
        ]
        if not candidates:
            break
        run = min(candidates, key=lambda r: learner_npoints(r.learner) + in_flight[r])
        try:
            points, _ = run.learner.ask(1)
        except Exception as error:
            fail(run, error)
            continue
        if not points:
            asked_out.add(run)
            continue
        pending[executor.submit(run.learner.function, points[0])] = (run, points[0])
        in_flight[run] += 1
        free -= 1
    return asked_out
