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


rule plot_sweep:
    input:
        results=get_sweep_results,
        learners=get_sweep_learners,
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
