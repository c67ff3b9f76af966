"""Draws results/plots/<sweep>.png from the sweep's saved learners."""

import json
import sys

from adaptive_snakemake.results.plots import write_sweep_plot
from adaptive_snakemake.specs.parse import LearnerSpec

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    specs = [LearnerSpec.from_dict(d) for d in json.loads(snakemake.params.specs)]
    write_sweep_plot(specs, snakemake.input, snakemake.output[0])
    print(f"plotted {len(specs)} learners", file=log)
