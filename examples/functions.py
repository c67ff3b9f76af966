"""Example functions for config/learners.yaml. Real ones are expensive; these sleep a little."""

import math
import time
from pathlib import Path


def peak(x, offset=0.0, width=0.1, cost=0.002):
    """A line with a sharp Lorentzian peak: adaptive puts its points on the peak."""
    time.sleep(cost)
    return x + width**2 / (width**2 + (x - offset) ** 2)


def ring(xy, radius=0.75, width=0.2, cost=0.002):
    """A ring-shaped ridge in the plane: adaptive refines the ring, not the flat parts."""
    time.sleep(cost)
    x, y = xy
    return x + math.exp(-((x**2 + y**2 - radius**2) ** 2) / width**4)


def always_fails(x):
    """For trying out failure handling: raises for every point."""
    raise ValueError(f"always_fails was called with x={x!r}")


def flaky(x, marks_dir, every=10, cost=0.001):
    """For trying out point retries: about one point in `every` raises the first time it is
    evaluated (a marker file in `marks_dir` remembers it), then succeeds."""
    time.sleep(cost)
    if round(abs(x) * 1e6) % every == 0:
        mark = Path(marks_dir) / repr(x)
        if not mark.exists():
            mark.touch()
            raise RuntimeError(f"flaky failed once at x={x!r}")
    return x**2
