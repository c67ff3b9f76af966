"""Live metrics: a reporter in each job, a collector beside the workflow, a status view.

The heavy parts (pandas, rich) load only when `load_metrics` or `status` is called,
so that jobs importing the reporter and the Snakefile starting the collector stay fast.
"""

from adaptive_snakemake.metrics.settings import MonitorSettings

__all__ = ["MonitorSettings", "load_metrics", "status"]


def load_metrics(workdir=".", source="auto"):
    """Every metrics record of the workflow in `workdir`, one DataFrame row each.

    source: "collector" (logs/metrics.jsonl), "logs" (JSON lines in logs/learners/**/*.log)
    or "auto" (the first if it is not empty).
    """
    from adaptive_snakemake.metrics.history import load_metrics as _load_metrics

    return _load_metrics(workdir, source)


def status(workdir=".", names=None):
    """One row per learner, the table `adaptive-snakemake status` shows, as a DataFrame.

    `names`: all learner names of the workflow, so that those not started show as pending.
    """
    from adaptive_snakemake.metrics.status import status as _status

    return _status(workdir, names)
