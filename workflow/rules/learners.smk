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
    threads: per_learner(_threads, mpi=True)
    resources:
        **learner_resources(mpi=True),
        mpi="mpiexec",  # profiles/slurm sets srun --mpi=pmi2
        runtime=get_runtime,
    params:
        sweep=per_learner(_sweep_fingerprint, mpi=True),
    # exec: no shell between snakemake and the launcher (see rule learner). SLURM's stop
    # signals reach every rank; the workers ignore them (executors.py), rank 0 saves.
    shell:
        "exec {resources.mpi} -n {resources.tasks} python -m mpi4py.futures -m adaptive_snakemake.job"
        " --name {wildcards.name:q}"
        " --sweep-fingerprint {params.sweep} >> {log:q} 2>&1"


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
    threads: per_learner(_threads, mpi=False)
    resources:
        **learner_resources(mpi=False),
        runtime=get_runtime,
    params:
        sweep=per_learner(_sweep_fingerprint, mpi=False),
    # exec: the learner is snakemake's own child. A stop signal (SLURM's walltime warning)
    # reaches every process of the job: snakemake waits for its running job on SIGTERM, a
    # shell in between would die and leave the learner orphaned in the middle of its save.
    shell:
        "exec python -m adaptive_snakemake.job --name {wildcards.name:q}"
        " --sweep-fingerprint {params.sweep} >> {log:q} 2>&1"
