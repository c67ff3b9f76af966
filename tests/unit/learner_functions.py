"""Functions for every learner type, importable as tests.unit.learner_functions:NAME."""

import math
import random


def curve(x, a=1.0):
    return math.tanh(a * x)


def surface(xy):
    x, y = xy
    return math.exp(-(x**2 + y**2) * 4)


def volume(xyz):
    return sum(v * v for v in xyz)


def noisy(seed):
    return random.Random(seed).gauss(0, 1)


def noisy_curve(seed_x):
    seed, x = seed_x
    return x + random.Random(seed).gauss(0, 0.1)


def square(n):
    return n * n


def half_uniform_loss(xs, ys):
    """A user's own loss for Learner1D (loss_per_interval), chosen as "module:function"."""
    return (xs[1] - xs[0]) / 2


class CountingLearner1D(__import__("adaptive").Learner1D):
    """A user's own learner class, chosen as "module:Class": counts the points it is told."""

    def __init__(self, function, bounds, label="counting", **kwargs):
        super().__init__(function, bounds, **kwargs)
        self.label = label
        self.told = 0

    def tell(self, x, y):
        self.told += 1
        super().tell(x, y)


class NotALearner:
    def __init__(self, function):
        pass


def no_point():
    """A function that cannot take the point to evaluate: refused at parse time."""
    return 1


def fails_above(x, limit=0.5):
    """Raises for every x above `limit`: a learner of it fails once it samples there."""
    if x > limit:
        raise ValueError(f"x={x} is above {limit}")
    return x
