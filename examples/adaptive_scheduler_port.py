"""adaptive-scheduler's README example, ported unchanged: the learners and fnames are
built in Python exactly as there; config/learners-from-python.yaml runs them.

    snakemake --config learners=examples/adaptive_scheduler_port.yaml
"""

import functools
import time

import adaptive


def h(x, width=0.01, offset=0.0, pow=1, a=0.1, cost=0.01):
    """A peak on a power law; `cost` seconds of "work" per point."""
    time.sleep(cost)
    return x**pow + a * width**2 / (width**2 + (x - offset) ** 2)


combos = adaptive.utils.named_product(pow=range(10), a=[0.1, 0.5])
learners = [adaptive.Learner1D(functools.partial(h, **combo), bounds=(-1, 1)) for combo in combos]
fnames = [f"data/{combo}" for combo in combos]
