# One target per learner; its job finds learners.yaml through ADAPTIVE_SNAKEMAKE_LEARNERS
# (set in common.smk), so that pointing --config learners=... at another file does not
# rerun learners that did not change. The checkpoint (state/<name>.pickle) is deliberately not an
# output: Snakemake deletes the outputs of failed jobs, and a retry must resume from it.


if workflow.is_main_process:
    # snakemake-executor-plugin-slurm <= 2.8.0 takes a job cancelled with scancel for a
    # running one (sacct says "CANCELLED by <uid>") and would never resubmit it.
    from adaptive_snakemake.slurm import fix_plugin_status_parsing

    fix_plugin_status_parsing()


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
    # exec: no shell between snakemake and the launcher. Worker ranks (PMI rank > 0) ignore
    # the stop signals (SLURM's walltime warning, scancel and Ctrl-C reach every rank): rank
    # 0 saves and exits, then the launcher ends the workers. A worker killed by the signal
    # would make the launcher kill rank 0 in the middle of its save.
    shell:
        "exec {resources.mpi} -n {resources.tasks}"
        ' sh -c \'[ "$PMI_RANK$PMIX_RANK" -gt 0 ] 2>/dev/null && trap "" INT TERM USR1;'
        ' exec "$@"\' rank'
        " python -m mpi4py.futures -m adaptive_snakemake.job"
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
    # exec: the learner is snakemake's own child, so that a stop signal (SLURM's walltime
    # warning) reaches a learner whose parent waits for its save, not a shell that dies
    # and leaves it orphaned.
    shell:
        "exec python -m adaptive_snakemake.job --name {wildcards.name:q}"
        " --sweep-fingerprint {params.sweep} >> {log:q} 2>&1"
