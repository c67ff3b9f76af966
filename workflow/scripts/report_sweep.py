"""Draws a sweep's report page (results/report/sweeps/<sweep>.html) and picture."""

from adaptive_snakemake.lazy_imports import defer

defer()  # adaptive's heavy imports, loaded only if used

import sys  # noqa: E402

from adaptive_snakemake.results.report import write_sweep_report  # noqa: E402

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    learners = snakemake.params.learners
    write_sweep_report(learners, snakemake.output.page, snakemake.output.picture)
    print(f"report of {len(learners)} learners ({snakemake.params.snapshot})", file=log)
