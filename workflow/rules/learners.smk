# One target per learner; its job finds learners.yaml through ADAPTIVE_SNAKEMAKE_LEARNERS
# (set in common.smk), so that pointing --config learners=... at another file does not
# rerun learners that did not change. The checkpoint (state/<name>.pickle) is deliberately not an
# output: Snakemake deletes the outputs of failed jobs, and a retry must resume from it.


rule learner_mpi:
    output:
        learner="results/{name}/learner.pickle",
        result="results/{name}/result.json",
    log:
        "logs/learners/{name}.log",
    wildcard_constraints:
        name=MPI_LEARNERS,
    conda:
        "../envs/adaptive-snakemake.yaml"
    threads: get_threads
    resources:
        mpi="mpiexec",  # profiles/slurm sets srun --mpi=pmi2
        tasks=get_tasks,
        runtime=get_runtime,
        mem_mb=get_mem_mb,
        slurm_partition=get_slurm_partition,
        slurm_account=get_slurm_account,
        slurm_extra=get_slurm_extra,
    params:
        fingerprint=get_fingerprint,
        goal=get_goal,
    shell:
        "{resources.mpi} -n {resources.tasks} python -m mpi4py.futures -m adaptive_snakemake.job"
        " --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} > {log:q} 2>&1"


rule learner:
    output:
        learner="results/{name}/learner.pickle",
        result="results/{name}/result.json",
    log:
        "logs/learners/{name}.log",
    wildcard_constraints:
        name=OTHER_LEARNERS,
    conda:
        "../envs/adaptive-snakemake.yaml"
    threads: get_threads
    resources:
        runtime=get_runtime,
        mem_mb=get_mem_mb,
        slurm_partition=get_slurm_partition,
        slurm_account=get_slurm_account,
        slurm_extra=get_slurm_extra,
    params:
        fingerprint=get_fingerprint,
        goal=get_goal,
    shell:
        "python -m adaptive_snakemake.job --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} > {log:q} 2>&1"
