"""Which learners a sweep's picture draws: shared by the drawing (plots.py) and the workflow,
whose picture rule asks for exactly those learners' data (Snakemake then redraws the picture
when one of them changes, and a sweep of 10,000 learners has 100 inputs, not 10,000). Free of
matplotlib: the Snakefile imports it."""

ONE_D = {"Learner1D", "AverageLearner1D", "IntegratorLearner"}
MAX_OVERLAY = 12  # 1D learners drawn as one overlay with a legend; more: a grid of panels
MAX_PANELS = 100  # a sweep with more learners shows its first 100 panels


def drawn_learners(kind: str, count: int) -> int:
    """How many of a sweep's `count` learners of adaptive class `kind` its picture draws (the
    first ones): all of an overlay, else up to MAX_PANELS."""
    if kind in ONE_D | {"SequenceLearner"} and count <= MAX_OVERLAY:
        return count
    return min(count, MAX_PANELS)
