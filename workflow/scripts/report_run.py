"""Draws the run's report pieces: every learner's table, the timeline, the convergence."""

import sys

from adaptive_snakemake.results.report import specs_of_run, write_run_report

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    specs = specs_of_run(snakemake.config)
    out = snakemake.output
    records = write_run_report(specs, out.summary, out.timeline, out.convergence)
    print(
        f"{len(specs)} learners, {records} metrics records ({snakemake.params.snapshot})", file=log
    )
