# Live metrics: a ZeroMQ collector beside the workflow (see README, "Watching a run").
# Handlers run in the main snakemake process only; imports stay inside them so that the
# Snakefile re-parsed inside every cluster job stays cheap.


onstart:
    from adaptive_snakemake.metrics.service import start_collector
    from adaptive_snakemake.metrics.settings import MonitorSettings
    from adaptive_snakemake.plan import write_plan

    monitor_settings = MonitorSettings.from_config(config.get("monitor"))
    # What `adaptive-snakemake status` lists (learners not started show as pending).
    write_plan(Path.cwd(), SPECS, monitor_settings)
    start_collector(Path.cwd(), monitor_settings, os.getpid())


onsuccess:
    from adaptive_snakemake.metrics.service import stop_collector

    stop_collector(Path.cwd())


onerror:
    from adaptive_snakemake.metrics.service import stop_collector

    stop_collector(Path.cwd())
