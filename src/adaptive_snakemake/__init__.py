"""Run many adaptive learners as checkpointed Snakemake targets.

Kept free of heavy imports: every per-job status call and Snakefile parse imports this
package.
"""


def load_metrics(
    workdir=".",
    source="auto",
    *,
    names=None,
    sweep=None,
    since=None,
    until=None,
    max_rows=100_000,
):
    """Metrics records of the workflow in `workdir` as a pandas DataFrame, one row each.

    source: "collector" (logs/metrics.jsonl and its rotated files), "logs" (JSON lines in
    logs/learners/**/*.log) or "auto" (the first if it is not empty). Filters: `names` (a
    learner name or list), `sweep` (a sweep name or list), `since` / `until` (unix seconds,
    datetime, string, or a timedelta meaning that long ago); `max_rows`: the newest rows
    only (default 100,000; None: all). See `adaptive_snakemake.metrics.history.load_metrics`.
    """
    from adaptive_snakemake.metrics.history import load_metrics as load

    return load(
        workdir,
        source,
        names=names,
        sweep=sweep,
        since=since,
        until=until,
        max_rows=max_rows,
    )


def status(workdir=".", names=None):
    """One row per learner, the table `adaptive-snakemake status` shows, as a DataFrame.

    `names`: all learner names of the workflow, so that those not started show as pending
    (default: the learners the last snakemake run planned).
    """
    from adaptive_snakemake.metrics.status import status as table

    return table(workdir, names)


def load_learner(name, workdir="."):
    """Learner `name` with its data (final, or its latest checkpoint), ready for
    `learner.plot()` and `learner.to_dataframe()`; built without your function."""
    from adaptive_snakemake.results.load import load_learner as load

    return load(name, workdir)


def load_learners(sweep=None, workdir="."):
    """{name: learner} for every learner with data, of one sweep if given."""
    from adaptive_snakemake.results.load import load_learners as load

    return load(sweep, workdir)


def load_results(sweep=None, workdir="."):
    """Every sampled point as one pandas DataFrame: name, sweep, grid parameters, then the
    learner's columns (adaptive's `to_dataframe`)."""
    from adaptive_snakemake.results.load import load_results as load

    return load(sweep, workdir)
