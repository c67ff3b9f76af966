"""Marks a sweep done once every one of its learners has reached its goal."""

from adaptive_snakemake.lazy_imports import defer

defer()  # adaptive's heavy imports, loaded only if used

import sys  # noqa: E402

from adaptive_snakemake.results.summary import write_sweep_done  # noqa: E402

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    results = write_sweep_done(snakemake.input, snakemake.output[0])
    print(f"{len(results)} learners of {snakemake.wildcards.sweep} done", file=log)
