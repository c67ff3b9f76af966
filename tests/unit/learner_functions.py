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
