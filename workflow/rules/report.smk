# The pieces of `snakemake --report report.html` (see README, "The report"): per sweep one
# self-contained HTML page (its learners' table and one page per learner) and its picture;
# for the run the table of every learner, a timeline and convergence curves. Two jobs per
# sweep and one for the run: the DAG stays small at 10,000 learners.
#
# After a full run they are drawn from the results. For a run that has not finished (or is
# still running), `snakemake report_pages --nolock --config report_from=current` draws them
# from what exists now (results, checkpoints, metrics), then `snakemake --report` collects.


rule report_sweep:
    input:
        get_report_sweep_inputs,
    output:
        page=report(
            layout.SWEEP_REPORT,
            caption="../report/sweep.rst",
            category="{sweep}",
            labels={"sweep": "{sweep}", "content": "learners and their pages"},
        ),
        picture=report(
            layout.SWEEP_REPORT_PICTURE,
            caption="../report/sweep_picture.rst",
            category="{sweep}",
            labels={"sweep": "{sweep}", "content": "picture"},
        ),
    log:
        layout.SWEEP_REPORT_LOG,
    wildcard_constraints:
        sweep=SWEEPS_REGEX,
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    params:
        learners=get_sweep_report_learners,
        snapshot=get_report_snapshot,
    script:
        "../scripts/report_sweep.py"


rule report_run:
    input:
        get_report_run_inputs,
    output:
        summary=report(
            layout.RUN_REPORT_SUMMARY,
            caption="../report/summary.rst",
            category="Run",
            labels={"content": "all learners"},
        ),
        timeline=report(
            layout.RUN_REPORT_TIMELINE,
            caption="../report/timeline.rst",
            category="Run",
            labels={"content": "timeline"},
        ),
        convergence=report(
            layout.RUN_REPORT_CONVERGENCE,
            caption="../report/convergence.rst",
            category="Run",
            labels={"content": "convergence"},
        ),
    log:
        layout.RUN_REPORT_LOG,
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    params:
        learners=get_run_report_learners,
        snapshot=get_report_snapshot,
    script:
        "../scripts/report_run.py"


rule report_pages:
    input:
        get_report_outputs(),
    localrule: True
