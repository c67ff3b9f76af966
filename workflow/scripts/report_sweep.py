"""Draws a sweep's report page (results/report/sweeps/<sweep>.html) and picture."""

import sys

from adaptive_snakemake.results.report import write_sweep_report

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    learners = snakemake.params.learners
    write_sweep_report(learners, snakemake.output.page, snakemake.output.picture)
    print(f"report of {len(learners)} learners ({snakemake.params.snapshot})", file=log)
