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
        fingerprint=get_fingerprint,
        goal=per_learner(_goal_text, mpi=True),
    shell:
        "{resources.mpi} -n {resources.tasks} python -m mpi4py.futures -m adaptive_snakemake.job"
        " --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} >> {log:q} 2>&1"


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
        fingerprint=get_fingerprint,
        goal=per_learner(_goal_text, mpi=False),
    shell:
        "python -m adaptive_snakemake.job --name {wildcards.name:q}"
        " --fingerprint {params.fingerprint} >> {log:q} 2>&1"
