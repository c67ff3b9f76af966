"""Draws a sweep's report page (results/report/sweeps/<sweep>.html) and picture."""

import json
import sys

from adaptive_snakemake.results.report import write_sweep_report
from adaptive_snakemake.specs.parse import LearnerSpec

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    specs = [LearnerSpec.from_dict(d) for d in json.loads(snakemake.params.specs)]
    write_sweep_report(specs, snakemake.output.page, snakemake.output.picture)
    print(f"report of {len(specs)} learners ({snakemake.params.snapshot})", file=log)
