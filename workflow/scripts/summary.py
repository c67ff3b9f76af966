"""Writes results/summary.csv from every learner's result.json."""

from adaptive_snakemake.lazy_imports import defer

defer()  # adaptive's heavy imports, loaded only if used

import sys  # noqa: E402

from adaptive_snakemake.results.summary import write_summary  # noqa: E402

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    rows = write_summary(snakemake.input, snakemake.output[0])
    print(f"{rows} learners summarized", file=log)
