"""Writes results/summary.csv from every learner's result.json."""

import sys

from adaptive_snakemake.results.summary import write_summary

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    table = write_summary(snakemake.input, snakemake.output[0])
    print(f"{len(table)} learners summarized", file=log)
