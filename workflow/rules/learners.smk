# One target per learner. Snakemake hands the job its spec and every path it writes. The
# checkpoint (state/<name>.pickle) is deliberately not an output: Snakemake deletes the
# outputs of failed jobs, and a retry must resume from it.


rule learner:
    input:
        get_dependencies(mpi=False),
    output:
        learner=layout.LEARNER_PICKLE,
        result=layout.RESULT_JSON,
    log:
        layout.LEARNER_LOG,
    wildcard_constraints:
        name=OTHER_LEARNERS,
    conda:
        "../envs/adaptive-snakemake.yaml"
    threads: get_threads(mpi=False)
    resources:
        **get_learner_resources(mpi=False),
        runtime=get_runtime,
    params:
        checkpoint=layout.CHECKPOINT,
        spec=get_learner_spec,
        launcher=get_launcher,
        sweep=get_sweep_fingerprint(mpi=False),
    # exec: the learner (or the MPI launcher) is snakemake's own child. A stop signal
    # (SLURM's walltime warning) reaches every process of the job: snakemake waits for its
    # running job on SIGTERM, a shell in between would die and leave the learner orphaned
    # in the middle of its save. MPI workers ignore the signal (executors.py), rank 0 saves.
    shell:
        "exec {params.launcher} -m adaptive_snakemake.job --spec {params.spec:q}"
        " --checkpoint {params.checkpoint:q} --learner-pickle {output.learner:q}"
        " --result {output.result:q} --log {log:q} --runtime {resources.runtime}"
        " >> {log:q} 2>&1"


# The same rule for mpi4py learners; only what must differ: which learners, the cores to
# reserve, and the MPI resources (mpi: the launcher; profiles/slurm sets srun --mpi=pmi2).
use rule learner as learner_mpi with:
    input:
        get_dependencies(mpi=True),
    wildcard_constraints:
        name=MPI_LEARNERS,
    threads: get_threads(mpi=True)
    resources:
        **get_learner_resources(mpi=True),
        mpi="mpiexec",
        runtime=get_runtime,
    params:
        checkpoint=layout.CHECKPOINT,
        spec=get_learner_spec,
        launcher=get_launcher,
        sweep=get_sweep_fingerprint(mpi=True),
