"""Draws results/plots/<sweep>.png from the sweep's saved learners."""

from adaptive_snakemake.lazy_imports import defer

defer()  # adaptive's heavy imports, loaded only if used

import json  # noqa: E402
import sys  # noqa: E402

from adaptive_snakemake.results.plots import write_sweep_plot  # noqa: E402
from adaptive_snakemake.specs.parse import LearnerSpec  # noqa: E402

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    specs = [LearnerSpec.from_dict(d) for d in json.loads(snakemake.params.specs)]
    write_sweep_plot(specs, snakemake.input, snakemake.output[0])
    print(f"plotted {len(specs)} learners", file=log)
