"""Live metrics: a reporter in each job, a collector beside the workflow, a status view.

Nothing heavy is imported here: jobs importing the reporter and the Snakefile starting
the collector must stay fast. `adaptive_snakemake.load_metrics` and
`adaptive_snakemake.status` are the public entry points (pandas and rich load on call).
"""
