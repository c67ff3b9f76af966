# One target per learner. The checkpoint (state/<name>.pickle) is deliberately not an
# output: Snakemake deletes the outputs of failed jobs, and a retry must resume from it.


rule learner_mpi:
    output:
        learner="results/{name}/learner.pickle",
        result="results/{name}/result.json",
    params:
        fingerprint=get_fingerprint,
        goal=get_goal,
    log:
        "logs/learners/{name}.log",
    wildcard_constraints:
        name=MPI_LEARNERS,
    threads: get_threads
    resources:
        mpi="mpiexec",
        tasks=get_tasks,
        runtime=get_runtime,
        mem_mb=get_mem_mb,
        slurm_partition=get_slurm_partition,
        slurm_account=get_slurm_account,
        slurm_extra=get_slurm_extra,
    shell:
        "{resources.mpi} -n {resources.tasks} python -m mpi4py.futures {RUN_LEARNER:q}"
        " --learners {LEARNERS_FILE:q} --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} > {log:q} 2>&1"


rule learner:
    output:
        learner="results/{name}/learner.pickle",
        result="results/{name}/result.json",
    params:
        fingerprint=get_fingerprint,
        goal=get_goal,
    log:
        "logs/learners/{name}.log",
    wildcard_constraints:
        name=OTHER_LEARNERS,
    threads: get_threads
    resources:
        runtime=get_runtime,
        mem_mb=get_mem_mb,
        slurm_partition=get_slurm_partition,
        slurm_account=get_slurm_account,
        slurm_extra=get_slurm_extra,
    shell:
        "python {RUN_LEARNER:q}"
        " --learners {LEARNERS_FILE:q} --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} > {log:q} 2>&1"
