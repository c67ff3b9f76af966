rule summary:
    input:
        get_result_files,
    output:
        layout.SUMMARY,
    log:
        layout.SUMMARY_LOG,
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    script:
        "../scripts/summary.py"


rule plot_sweep:
    input:
        get_sweep_learner_files,
    output:
        layout.SWEEP_PLOT,
    log:
        layout.SWEEP_PLOT_LOG,
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    params:
        specs=get_sweep_specs,
    script:
        "../scripts/plot_sweep.py"


# Every learner of a sweep reached its goal: what the learners of sweeps with `after:` wait for.
rule sweep_done:
    input:
        get_sweep_result_files,
    output:
        layout.SWEEP_DONE,
    log:
        layout.SWEEP_DONE_LOG,
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    script:
        "../scripts/sweep_done.py"
