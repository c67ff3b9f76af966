"""Draws a sweep's report page (results/report/sweeps/<sweep>.html) and picture."""

import sys

from adaptive_snakemake.results.report import specs_of_run, write_sweep_report

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    specs = specs_of_run(snakemake.config, snakemake.wildcards.sweep)
    count = write_sweep_report(specs, snakemake.output.page, snakemake.output.picture)
    print(f"report of {count} learners ({snakemake.params.snapshot})", file=log)
