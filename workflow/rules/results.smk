rule summary:
    input:
        get_result_files,
    output:
        "results/summary.csv",
    log:
        "logs/summary.log",
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    script:
        "../scripts/summary.py"


# Depends on the summary rather than on every learner: one edge instead of one per
# learner keeps the DAG of a 10,000-learner sweep cheap; the summary changes whenever
# any learner does.
rule plot_sweep:
    input:
        "results/summary.csv",
    output:
        "results/plots/{sweep}.png",
    log:
        "logs/plots/{sweep}.log",
    localrule: True
    conda:
        "../envs/adaptive-snakemake.yaml"
    params:
        specs=get_sweep_spec_json,
    script:
        "../scripts/plot_sweep.py"
