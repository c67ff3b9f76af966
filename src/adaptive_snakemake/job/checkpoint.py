"""Checkpoints: learners saved in adaptive's own format, atomically.

A checkpoint is exactly what ``learner.save(path)`` would write (gzip of the cloudpickled
``learner._get_data()``), so ``learner.load(path)`` reads it. Two things differ from adaptive:
a failed save raises instead of being silently ignored, and restoring a large Learner1D
takes seconds instead of minutes (its ``tell_many`` is quadratic; see ``_restore_learner1d``).
"""

from __future__ import annotations

import os
from copy import deepcopy
from typing import Any

import numpy as np
from adaptive import BalancingLearner, DataSaver, Learner1D
from adaptive.learner.learner1D import _get_neighbors_from_array, default_loss, loss_manager

from adaptive_snakemake.job.checkpoint_file import CheckpointError, read_data, write_data

__all__ = ["CheckpointError", "restore_learner", "save_learner"]


def save_learner(learner: Any, path: str | os.PathLike) -> None:
    """Save ``learner``'s data in adaptive's own format, atomically; raise if it fails.

    ``learner.load(path)`` reads it, for every learner but BalancingLearner, whose ``load``
    wants one file per child: use ``restore_learner``.
    """
    write_data(learner._get_data(), path)


def restore_learner(learner: Any, path: str | os.PathLike) -> int:
    """Load the checkpoint at ``path`` into a fresh ``learner``; return its number of points.

    A missing checkpoint means "start from scratch" and returns 0. A checkpoint that exists
    but cannot be restored raises CheckpointError: silently starting over would throw away
    everything the earlier jobs computed, and the next save would overwrite it.
    """
    try:
        data = read_data(path)
    except FileNotFoundError:
        return 0
    try:
        _set_data(learner, data)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} does not fit this {type(learner).__name__} "
            f"({type(e).__name__}: {e}). Was it written by another learner? Move it aside "
            f"(mv {path} {path}.broken) and rerun to start this learner over."
        ) from e
    npoints = getattr(learner, "npoints", None)
    return int(npoints) if npoints is not None else len(data)


def _set_data(learner: Any, data: Any) -> None:
    """``learner._set_data(data)``, with the same result, minus Learner1D's quadratic cost."""
    cls = type(learner)
    if isinstance(learner, BalancingLearner) and cls._set_data is BalancingLearner._set_data:
        # strict: adaptive's zip would silently give children the data of their neighbours.
        for child, child_data in zip(learner.learners, data, strict=True):
            _set_data(child, child_data)
    elif isinstance(learner, DataSaver) and cls._set_data is DataSaver._set_data:
        learner_data, learner.extra_data = data
        _set_data(learner.learner, learner_data)
    elif _is_plain_learner1d(learner) and len(data) > 2:
        _restore_learner1d(learner, data)
    else:
        # Measured linear or better for the other learners (Learner2D, LearnerND,
        # AverageLearner and SequenceLearner just assign; AverageLearner1D ~0.3 ms/point).
        learner._set_data(data)


def _is_plain_learner1d(learner: Any) -> bool:
    """A fresh Learner1D whose loading code is adaptive's own (AverageLearner1D is not)."""
    cls = type(learner)
    return (
        isinstance(learner, Learner1D)
        and cls._set_data is Learner1D._set_data
        and cls.tell_many is Learner1D.tell_many
        and not learner.data
        and not learner.pending_points
    )


def _restore_learner1d(learner: Learner1D, data: dict) -> None:
    """The state ``Learner1D.tell_many(xs, ys)`` builds in a fresh learner, in O(n log n).

    A transcription of the bulk branch of adaptive 1.5's ``Learner1D.tell_many`` for a
    learner without points or pending points (so the "combined" structures equal the real
    ones and nothing needs interpolating). That code checks ``ival in reversed(self.losses)``
    for every interval: a linear scan of the sorted dict, hence its quadratic time. Telling
    points one by one is fast but not equivalent: each loss is computed with the y-scale of
    its moment (recomputed only when the scale doubles), so losses and the next ``ask`` can
    differ. Tests compare this with adaptive's own load (data, neighbours, losses,
    ``loss()``, the next ``ask``, even the types of the numbers).
    """
    learner.data.update(data)
    points = np.array(list(learner.data.keys()))
    values = np.array(list(learner.data.values()))
    # hstack with an empty float array, as tell_many does: it casts integer xs to float.
    points_combined = np.hstack([np.array([]), points])

    learner.neighbors = _get_neighbors_from_array(points)
    learner.neighbors_combined = _get_neighbors_from_array(points_combined)

    learner._bbox[0] = [points_combined.min(), points_combined.max()]
    learner._bbox[1] = [values.min(axis=0), values.max(axis=0)]
    learner._scale[0] = learner._bbox[0][1] - learner._bbox[0][0]
    learner._scale[1] = np.max(learner._bbox[1][1] - learner._bbox[1][0])
    learner._oldscale = deepcopy(learner._scale)

    # Intervals built as tell_many builds them (a numpy key, then the Python number of its
    # right neighbour; integer xs stay integers in the real ones only), so that even the
    # types of the points ``ask`` returns are the same.
    intervals, intervals_combined = (
        [(x, right) for x, (_, right) in neighbors.items()][:-1]
        for neighbors in (learner.neighbors, learner.neighbors_combined)
    )
    if learner.loss_per_interval is default_loss and values.ndim == 1:
        losses = _default_losses(learner, intervals)
    else:
        losses = {ival: learner._get_loss_in_interval(*ival) for ival in intervals}
    # update() on an empty sorted dict sorts once instead of inserting n times. Without
    # pending points every combined interval is a real one (equal, if not the same type).
    learner.losses = loss_manager(learner._scale[0])
    learner.losses.update(losses)
    learner.losses_combined = loss_manager(learner._scale[0])
    learner.losses_combined.update({ival: losses[ival] for ival in intervals_combined})


def _default_losses(learner: Learner1D, intervals: list) -> dict:
    """``learner._get_loss_in_interval`` of every interval for adaptive's default loss and
    scalar values, computed with numpy at once (loading 1,000 learners of 1,000 points
    would otherwise spend a minute in that call): the same operations element by element
    (scale each end, subtract, ``np.hypot``), so the same numbers and types, and ``0`` for
    intervals shorter than ``_dx_eps`` as there."""
    lefts = np.array([left for left, _ in intervals], dtype=float)
    rights = np.array([right for _, right in intervals], dtype=float)
    y_lefts = np.array([learner.data[left] for left, _ in intervals], dtype=float)
    y_rights = np.array([learner.data[right] for _, right in intervals], dtype=float)
    x_scale, y_scale = learner._scale[0], learner._scale[1] or 1
    hypot = np.hypot(rights / x_scale - lefts / x_scale, y_rights / y_scale - y_lefts / y_scale)
    tiny = (rights - lefts) < learner._dx_eps
    return {ival: 0 if tiny[k] else hypot[k] for k, ival in enumerate(intervals)}
