"""Run many adaptive learners as checkpointed Snakemake targets.

Kept free of imports: every per-job status call and Snakefile parse imports this package.
"""


def load_metrics(workdir=".", source="auto"):
    """The metrics history of a workflow as a pandas DataFrame (one row per record)."""
    from adaptive_snakemake.metrics import load_metrics as load

    return load(workdir, source=source)


def status(workdir=".", names=None):
    """The status table of every learner (as `adaptive-snakemake status`), a DataFrame."""
    from adaptive_snakemake.metrics import status as table

    return table(workdir, names=names)
