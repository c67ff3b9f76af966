"""Marks a sweep done once every one of its learners has reached its goal."""

import sys

from adaptive_snakemake.results.summary import write_sweep_done

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    results = write_sweep_done(snakemake.input, snakemake.output[0])
    print(f"{len(results)} learners of {snakemake.wildcards.sweep} done", file=log)
