"""results/plots/<sweep>.png: one picture per sweep, drawn from the learners' saved data."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from adaptive_snakemake.fileio import atomic_write_bytes  # noqa: E402
from adaptive_snakemake.results.load import read_learner  # noqa: E402
from adaptive_snakemake.specs.parse import LearnerSpec  # noqa: E402

ONE_D = {"Learner1D", "AverageLearner1D", "IntegratorLearner"}
MAX_PANELS = 36  # a sweep with more learners shows its first 36 as images


def _label(spec: LearnerSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.params.items()) or spec.name


def _sorted_xy(data: dict):
    xs = np.array(sorted(data))
    ys = np.array([data[x] for x in xs], dtype=float)
    return xs, ys


def _plot_curves(specs, learners, axes) -> None:
    for spec, learner in zip(specs, learners, strict=True):
        xs, ys = _sorted_xy(learner.data)
        axes.plot(xs, ys, ".-", markersize=2, linewidth=0.8, label=_label(spec))
    axes.set_xlabel("x")
    axes.set_ylabel("f(x)")
    if len(specs) <= 12:
        axes.legend(fontsize="small")


def _plot_image(spec, learner, axes) -> None:
    if spec.learner == "Learner2D" and learner.npoints >= 4:
        grid = learner.interpolated_on_grid()
        values = np.asarray(grid[2], dtype=float)
        (x0, x1), (y0, y1) = learner.bounds
        axes.imshow(values.T, origin="lower", extent=(x0, x1, y0, y1), aspect="auto")
        points = np.array(list(learner.data))
        axes.plot(points[:, 0], points[:, 1], "k.", markersize=0.6, alpha=0.4)
    else:
        points = np.array(list(learner.data), dtype=float)
        values = np.array(list(learner.data.values()), dtype=float)
        if points.ndim == 2 and points.shape[1] >= 2:
            axes.scatter(points[:, 0], points[:, 1], c=values, s=4)
        else:
            axes.hist(values, bins=30)
    axes.set_title(_label(spec), fontsize="small")


def draw_sweep(specs: list[LearnerSpec], learner_files: list[str | Path]) -> bytes:
    """PNG bytes of the sweep: curves for 1D learners, images for 2D, histograms otherwise."""
    learners = [
        read_learner(s.learner, s.learner_kwargs, f)
        for s, f in zip(specs, learner_files, strict=True)
    ]
    kind = specs[0].learner
    if kind in ONE_D:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        _plot_curves(specs, learners, axes)
    elif kind == "SequenceLearner":
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for spec, learner in zip(specs, learners, strict=True):
            xs, ys = _sorted_xy(learner.data)
            axes.plot(xs, ys, ".", label=_label(spec))
        axes.set_xlabel("sequence index")
    else:
        shown = min(len(specs), MAX_PANELS)
        columns = math.ceil(math.sqrt(shown))
        rows = math.ceil(shown / columns)
        figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 3 * rows), squeeze=False)
        for index, axes in enumerate(grid.flat):
            if index < shown:
                _plot_image(specs[index], learners[index], axes)
            else:
                axes.axis("off")
    figure.suptitle(f"sweep {specs[0].sweep}: {len(specs)} learner(s), {kind}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def write_sweep_plot(specs, learner_files, output: str | Path) -> None:
    atomic_write_bytes(output, draw_sweep(specs, learner_files))
