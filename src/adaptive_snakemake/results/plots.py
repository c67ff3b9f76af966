"""Pictures of learners: one per sweep (results/plots/<sweep>.png), one per learner (report).

Every learner type gets its own drawing: curves for 1D learners (with error bars of the
mean for AverageLearner1D), an image with a colour bar and the sampled points for
Learner2D, coloured points for LearnerND, the mean with its error for AverageLearner,
values per index for SequenceLearner. A sweep of a few 1D learners is one overlay with a
legend; more learners become a grid of small panels (readable at 100 learners; larger
sweeps show the first MAX_PANELS and say so).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

# Figures without pyplot: no global figure registry to close, and 0.2 s less to import. Every
# layout is set by hand (_place): tight_layout draws the whole figure once more to measure
# it, which doubled the time of a 20-panel sweep (with pyplot's figures: W's picture took
# 5.5 s, now 1.5 s).
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from adaptive_snakemake.fileio import atomic_write_bytes
from adaptive_snakemake.job.checkpoint_file import read_data
from adaptive_snakemake.results.drawn import MAX_OVERLAY, MAX_PANELS, ONE_D, drawn_learners
from adaptive_snakemake.specs.parse import LearnerSpec

# Learners whose saved data is all a drawing of them needs: a dict of points. Their
# pictures are drawn without importing adaptive (~0.5 s of the picture at the end of a run).
_DRAWN_FROM_DATA = {"Learner1D", "SequenceLearner"}


def label_of(spec: LearnerSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.params.items()) or spec.name


def _finite(values) -> np.ndarray:
    array = np.array(values, dtype=float)
    array[~np.isfinite(array)] = np.nan
    return array


def _scalar_values(values) -> np.ndarray | None:
    """The values as floats if every value is a number; else None (vector outputs: first
    component)."""
    try:
        array = np.array(list(values), dtype=float)
    except (TypeError, ValueError):
        return None
    if array.ndim == 2:
        array = array[:, 0]
    return array if array.ndim == 1 else None


def _draw_1d(learner, axes, label=None, small=False) -> None:
    if not learner.data:
        return
    xs = np.array(sorted(learner.data), dtype=float)
    ys = _scalar_values(learner.data[x] for x in xs)
    if ys is None:
        return
    marker = dict(markersize=1.5 if small else 2.5, linewidth=0.8)
    if type(learner).__name__ == "AverageLearner1D":
        errors = _finite([learner.error.get(x, np.nan) for x in xs])
        axes.errorbar(
            xs, ys, yerr=errors, fmt=".-", elinewidth=0.6, capsize=0, label=label, **marker
        )
    else:
        axes.plot(xs, ys, ".-", label=label, **marker)


def _draw_2d(learner, axes, figure, colorbar=True, small=False, norm=None):
    """Learner2D: interpolated image, colour bar, sampled points. Returns the image."""
    points = np.array(list(learner.data), dtype=float).reshape(-1, 2)
    (x0, x1), (y0, y1) = learner.bounds
    image = None
    if learner.npoints >= 4:
        grid = learner.interpolated_on_grid(n=100 if small else 200)
        values = np.asarray(grid[2], dtype=float)
        if values.ndim == 3:
            values = values[..., 0]
        image = axes.imshow(
            values.T,
            origin="lower",
            extent=(x0, x1, y0, y1),
            aspect="auto",
            cmap="viridis",
            norm=norm,
        )
    elif len(points):
        values = _scalar_values(learner.data.values())
        image = axes.scatter(points[:, 0], points[:, 1], c=values, s=8, norm=norm)
    if len(points):
        axes.plot(points[:, 0], points[:, 1], "k.", markersize=0.7 if small else 1.2, alpha=0.5)
    axes.set_xlim(x0, x1)
    axes.set_ylim(y0, y1)
    if image is not None and colorbar:
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    return image


def _draw_nd(learner, axes, figure, colorbar=True, small=False, norm=None):
    points = np.array(list(learner.data), dtype=float)
    values = _scalar_values(learner.data.values())
    if not len(points) or values is None:
        return None
    image = axes.scatter(points[:, 0], points[:, 1], c=values, s=3 if small else 8, norm=norm)
    if colorbar:
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    return image


def _draw_average(learner, axes, label=None, position=0.0) -> None:
    """AverageLearner: the mean with its error (standard error of the mean) and std."""
    if learner.npoints == 0:
        return
    mean = float(learner.mean)
    error = float(learner.std) / math.sqrt(max(1, learner.npoints))
    axes.errorbar([position], [mean], yerr=[error], fmt="o", capsize=4, label=label)


def _draw_sequence(learner, axes, label=None, small=False) -> None:
    if not learner.data:
        return
    xs = np.array(sorted(learner.data))
    ys = _scalar_values(learner.data[x] for x in xs)
    if ys is not None:
        axes.plot(xs, ys, ".", markersize=2 if small else 4, label=label)


def draw_learner(kind: str, learner, axes, figure, label=None, small=False, norm=None):
    """Draw one learner of adaptive class `kind` into `axes`; returns an image for a shared
    colour bar (2D kinds), else None."""
    if kind in ONE_D:
        _draw_1d(learner, axes, label=label, small=small)
    elif kind == "Learner2D":
        return _draw_2d(learner, axes, figure, colorbar=norm is None, small=small, norm=norm)
    elif kind == "LearnerND":
        return _draw_nd(learner, axes, figure, colorbar=norm is None, small=small, norm=norm)
    elif kind == "AverageLearner":
        _draw_average(learner, axes, label=label)
        axes.set_xticks([])
    elif kind == "SequenceLearner":
        _draw_sequence(learner, axes, label=label, small=small)
    return None


def _axis_labels(kind: str, axes) -> None:
    if kind in ONE_D:
        axes.set_xlabel("x")
        axes.set_ylabel("f(x)")
    elif kind in ("Learner2D", "LearnerND"):
        axes.set_xlabel("x")
        axes.set_ylabel("y")
    elif kind == "SequenceLearner":
        axes.set_xlabel("sequence index")
        axes.set_ylabel("value")
    elif kind == "AverageLearner":
        axes.set_ylabel("mean ± error")


def _png(figure, dpi=100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _place(figure, left=0.75, right=0.25, bottom=0.55, top=0.45, wspace=0.2, hspace=0.2):
    """Margins in inches (room for tick labels, axis labels and titles); spaces between
    panels as fractions of a panel, as subplots_adjust takes them."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )


def learner_png(spec: LearnerSpec, learner, title: str | None = None) -> bytes:
    """PNG of one learner (its page in the report)."""
    figure = Figure(figsize=(5, 3.6))
    axes = figure.subplots()
    draw_learner(spec.learner, learner, axes, figure)
    _axis_labels(spec.learner, axes)
    axes.set_title(title or spec.name, fontsize="small")
    _place(figure, left=0.8, right=0.2)
    return _png(figure, dpi=80)


def _shared_norm(kind: str, learners):
    """One colour scale for all panels of a large 2D sweep (one colour bar)."""
    if kind not in ("Learner2D", "LearnerND"):
        return None
    values = [_scalar_values(learner.data.values()) for learner in learners if learner.data]
    values = [v[np.isfinite(v)] for v in values if v is not None]
    values = [v for v in values if len(v)]
    if not values:
        return None
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    return matplotlib.colors.Normalize(low, high if high > low else low + 1)


def draw_sweep_learners(
    specs: Sequence[LearnerSpec],
    learners: Sequence,
    title: str | None = None,
    total: int | None = None,
) -> bytes:
    """PNG of a sweep from its learners (None for a learner without data yet). `total`: the
    sweep's number of learners when only the first ones are given."""
    pairs = [(s, x) for s, x in zip(specs, learners, strict=True) if x is not None]
    kind = specs[0].learner
    sweep = specs[0].sweep
    done = len(pairs)
    heading = title or f"sweep {sweep}: {total or len(specs)} learner(s), {kind}"
    if total and total > len(specs):
        heading += f"; the first {len(specs)} drawn"
    if done < len(specs):
        heading += f" ({len(specs) - done} without data yet)"
    if kind == "AverageLearner":
        if done > MAX_PANELS:
            heading += f"; first {MAX_PANELS} shown"
            pairs = pairs[:MAX_PANELS]
            done = MAX_PANELS
        figure = Figure(figsize=(max(5, min(0.2 * done + 2, 22)), 4))
        axes = figure.subplots()
        for position, (_spec, learner) in enumerate(pairs):
            _draw_average(learner, axes, position=position)
        axes.set_xticks(range(done))
        axes.set_xticklabels(
            [label_of(s) for s, _ in pairs],
            rotation=60,
            ha="right",
            fontsize="x-small" if done > 20 else "small",
        )
        _axis_labels(kind, axes)
        _place(figure, bottom=1.6, top=0.5)  # the rotated learner labels
    elif kind in ONE_D | {"SequenceLearner"} and done <= MAX_OVERLAY:
        figure = Figure(figsize=(7, 4.5))
        axes = figure.subplots()
        for spec, learner in pairs:
            draw_learner(kind, learner, axes, figure, label=label_of(spec))
        _axis_labels(kind, axes)
        if pairs and len(specs) > 1:
            axes.legend(fontsize="small")
        _place(figure, left=0.8, top=0.5)
    else:
        shown = pairs[:MAX_PANELS]
        if len(pairs) > MAX_PANELS:
            heading += f"; first {MAX_PANELS} shown"
        count = max(1, len(shown))
        columns = math.ceil(math.sqrt(count))
        rows = math.ceil(count / columns)
        small = count > 16
        size = 1.7 if small else 3.2
        figure = Figure(figsize=(size * columns + 1, size * 0.9 * rows + 0.6))
        grid = figure.subplots(rows, columns, squeeze=False)
        norm = _shared_norm(kind, [x for _, x in shown]) if small else None
        image = None
        for index, axes in enumerate(grid.flat):
            if index >= len(shown):
                axes.axis("off")
                continue
            spec, learner = shown[index]
            image = draw_learner(kind, learner, axes, figure, small=small, norm=norm) or image
            # y given: matplotlib then skips fitting each title above the axes' own top
            # decorations (there are none), which measured every panel's ticks (0.4 s of 20).
            axes.set_title(label_of(spec), fontsize=6 if small else "small", y=1.0)
            if small:
                axes.tick_params(labelsize=5, length=2)
                # Three ticks a side: readable at this size, and each label is text to draw.
                axes.xaxis.set_major_locator(MaxNLocator(3))
                axes.yaxis.set_major_locator(MaxNLocator(3))
        # Panels with their own colour bar (2D, few panels) need more room between them.
        colour_bars = norm is None and kind in ("Learner2D", "LearnerND")
        if small:
            right = 0.6 if norm else 0.2
            _place(figure, 0.45, right, 0.35, 0.6, wspace=0.45, hspace=0.55)
        else:
            wspace = 0.75 if colour_bars else 0.35
            _place(figure, 0.6, 0.2, 0.45, 0.7, wspace=wspace, hspace=0.45)
        if norm is not None and image is not None:
            figure.colorbar(image, ax=grid.ravel().tolist(), fraction=0.02, pad=0.01)
    figure.suptitle(heading)
    return _png(figure, dpi=90 if len(pairs) > 16 else 110)


class _SavedPoints:
    """What the drawing reads of a plain Learner1D or SequenceLearner: its points."""

    def __init__(self, data: dict):
        self.data = data


def _read_for_drawing(spec: LearnerSpec, path: str | Path):
    """The learner saved at `path`, or only its points where that is all its drawing reads
    (a learner built in Python may be of a subclass: it is always rebuilt)."""
    if spec.learner in _DRAWN_FROM_DATA and spec.definition is None:
        data = read_data(path)
        if isinstance(data, dict):
            return _SavedPoints(data)
    from adaptive_snakemake.results.load import read_learner  # imports adaptive

    return read_learner(spec.learner, spec.learner_kwargs, path, spec.definition)


def draw_sweep(specs: list[LearnerSpec], learner_files: list[str | Path]) -> bytes:
    """PNG bytes of the sweep from its saved learners: the first `drawn_learners` of them
    (`learner_files` may hold only those; a sweep of 10,000 is not read whole for 100 panels)."""
    count = drawn_learners(specs[0].learner, len(specs))
    learners = [
        _read_for_drawing(s, f) for s, f in zip(specs[:count], learner_files[:count], strict=True)
    ]
    return draw_sweep_learners(specs[:count], learners, total=len(specs))


def write_sweep_plot(specs, learner_files, output: str | Path) -> None:
    atomic_write_bytes(output, draw_sweep(specs, learner_files))


def current_sweep_png(sweep: str, workdir: str | os.PathLike = ".") -> tuple[bytes, int]:
    """PNG of a sweep's current state (finished learners and the latest checkpoints of the
    others), without learners.yaml: (png, number of learners drawn). KeyError if none."""
    from adaptive_snakemake.results.report import current_learners

    found = current_learners(workdir, sweep)
    if not found:
        raise KeyError(f"sweep {sweep!r} has no learner with a result or checkpoint in {workdir}")
    specs = [spec for spec, _ in found]
    return draw_sweep_learners(specs, [learner for _, learner in found]), len(found)


# -- command line -------------------------------------------------------------------------------


def main_plot(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="adaptive-snakemake plot",
        description="Draw a sweep's current state (finished learners and the latest checkpoints "
        "of unfinished ones) into a PNG.",
    )
    parser.add_argument("sweep", help="the sweep's name (as in learners.yaml)")
    parser.add_argument("-d", "--workdir", default=".", help="workflow directory (default: .)")
    parser.add_argument("-o", "--output", help="PNG to write (default: <sweep>-current.png)")
    args = parser.parse_args(argv)
    output = args.output or f"{args.sweep}-current.png"
    try:
        png, count = current_sweep_png(args.sweep, args.workdir)
    except KeyError as error:
        print(f"adaptive-snakemake plot: {error.args[0]}", file=sys.stderr)
        return 1
    atomic_write_bytes(output, png)
    print(f"{output}: {count} learner(s) of sweep {args.sweep}")
    return 0
