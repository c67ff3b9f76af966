# What runs in the main snakemake process when a run starts and ends: the plan that
# `adaptive-snakemake status` lists, the run id, and the live-metrics collector (see README,
# "Watching a run"). Imports stay inside the handlers so that the Snakefile re-parsed
# inside every cluster job stays cheap.


onstart:
    import uuid
    from adaptive_snakemake.job.bookkeeping import RUN_ID_ENV
    from adaptive_snakemake.metrics.service import start_collector
    from adaptive_snakemake.plan import write_plan

    # Which learners share a job, and what each pack's job reads (common.smk).
    remember_packs()
    # What `adaptive-snakemake status` lists (learners not started show as pending).
    write_plan(Path.cwd(), SPECS, MONITOR)
    # Tells the jobs of this run from those of later runs: a code failure is not retried
    # within a run, but is tried again after the user fixed the function and reran.
    os.environ[RUN_ID_ENV] = uuid.uuid4().hex
    start_collector(Path.cwd(), MONITOR, os.getpid())


def end_of_run():
    from adaptive_snakemake.metrics.service import stop_collector
    from adaptive_snakemake.scheduler_timers import cancel_rescheduling_timers

    stop_collector(Path.cwd())
    cancel_rescheduling_timers()  # else the exit waits up to 1 s for them


onsuccess:
    end_of_run()


onerror:
    end_of_run()
