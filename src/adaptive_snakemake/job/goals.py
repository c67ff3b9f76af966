"""When a learner is done: the first of npoints / loss / duration met, or its own done()."""

from __future__ import annotations

import math


def learner_npoints(learner) -> int:
    npoints = getattr(learner, "npoints", None)
    if npoints is None:
        return len(learner.data)
    return int(npoints)


def learner_loss(learner) -> float:
    """The learner's loss, or inf where adaptive cannot compute one yet (too few points)."""
    try:
        loss = float(learner.loss())
    except (ValueError, ZeroDivisionError, IndexError):
        return math.inf
    return loss if not math.isnan(loss) else math.inf


def goal_reached(goal: dict, learner, elapsed: float) -> str | None:
    """Which goal is met ("npoints", "loss", "duration", "done"), or None to keep going.

    `elapsed` is cumulative over every attempt, so a duration goal survives restarts.
    """
    if "npoints" in goal and learner_npoints(learner) >= goal["npoints"]:
        return "npoints"
    if "duration" in goal and elapsed >= goal["duration"]:
        return "duration"
    if "loss" in goal and learner_npoints(learner) > 0 and learner_loss(learner) <= goal["loss"]:
        return "loss"
    done = getattr(learner, "done", None)
    if done is not None and done():
        return "done"
    return None
