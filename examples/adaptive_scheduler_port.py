"""adaptive-scheduler's README example, ported unchanged: the learners and fnames are
built in Python exactly as there; examples/adaptive_scheduler_port.yaml runs them.

    snakemake --config learners=examples/adaptive_scheduler_port.yaml
"""

import functools
import time

import adaptive


def h(x, pow, a, cost=0.01):
    """adaptive-scheduler's README function, with `cost` seconds of "work" per point."""
    time.sleep(cost)
    return a * x**pow


combos = adaptive.utils.named_product(pow=range(10), a=[0.1, 0.5])
learners = [adaptive.Learner1D(functools.partial(h, **combo), bounds=(-1, 1)) for combo in combos]
fnames = [f"data/{combo}" for combo in combos]
