"""Draws the run's report pieces: every learner's table, the timeline, the convergence."""

from adaptive_snakemake.lazy_imports import defer

defer()  # adaptive's heavy imports, loaded only if used

import sys  # noqa: E402

from adaptive_snakemake.results.report import write_run_report  # noqa: E402

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    learners = snakemake.params.learners
    out = snakemake.output
    records = write_run_report(learners, out.summary, out.timeline, out.convergence)
    print(
        f"{len(learners)} learners, {records} metrics records ({snakemake.params.snapshot})",
        file=log,
    )
