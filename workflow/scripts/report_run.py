"""Draws the run's report pieces: every learner's table, the timeline, the convergence."""

import json
import sys

from adaptive_snakemake.results.report import Described, write_run_report

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    learners = [Described.from_dict(d) for d in json.loads(snakemake.params.learners)]
    records = write_run_report(
        learners,
        snakemake.output.summary,
        snakemake.output.timeline,
        snakemake.output.convergence,
    )
    print(f"{len(learners)} learners, {records} metrics records", file=log)
