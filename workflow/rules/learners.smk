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
        learner=layout.LEARNER_LOG,
    wildcard_constraints:
        name=OTHER_LEARNERS,
    conda:
        "../envs/adaptive-snakemake.yaml"
    threads: get_threads(mpi=False)
    resources:
        **get_learner_resources(mpi=False),
        runtime=get_runtime,
    params:
        learners=get_job_arguments,
        launcher=get_launcher(mpi=False),
        sweep=get_sweep_fingerprint(mpi=False),
    # exec: the learner (or the MPI launcher) is snakemake's own child. A stop signal
    # (SLURM's walltime warning) reaches every process of the job: snakemake waits for its
    # running job on SIGTERM, a shell in between would die and leave the learner orphaned
    # in the middle of its save. MPI workers ignore the signal (executors.py), rank 0 saves.
    shell:
        JOB_SHELL


# The same rule for mpi4py learners; only what must differ: which learners, the cores to
# reserve, and the MPI resources (common.smk: MPI_RESOURCES; the launcher is
# resources.mpi_launcher, which profiles/slurm sets to srun --mpi=pmi2).
use rule learner as learner_mpi with:
    input:
        get_dependencies(mpi=True),
    wildcard_constraints:
        name=MPI_LEARNERS,
    threads: get_threads(mpi=True)
    resources:
        **get_learner_resources(mpi=True),
        **MPI_RESOURCES,
        runtime=get_runtime,
    params:
        learners=get_job_arguments,
        launcher=get_launcher(mpi=True),
        sweep=get_sweep_fingerprint(mpi=True),


# A sweep with `pack: N`: one rule per pack of N learners (common.smk: PACKS), whose job
# runs them together on its workers. Its outputs are every member's files, so each learner
# is still a target of its own, and its members' results together (what the summary reads);
# its membership is remembered (specs/packs.py), so adding learners to a sweep reruns no pack
# of finished ones.
for pack in PACKS:

    rule:
        name:
            get_pack_rule_name(pack)
        input:
            get_pack_dependencies(pack),
        # The pack's results first: Snakemake matches a requested file against a rule's
        # outputs in order, and the summary asks for this one (common.smk: get_result_files).
        output:
            pack=get_pack_results(pack),
            learner=get_pack_files(pack, layout.LEARNER_PICKLE),
            result=get_pack_files(pack, layout.RESULT_JSON),
        log:
            job=get_pack_log(pack),
            learner=get_pack_files(pack, layout.LEARNER_LOG),
        conda:
            "../envs/adaptive-snakemake.yaml"
        threads: get_pack_threads(pack)
        resources:
            **get_pack_resources(pack),
        params:
            learners=get_pack_arguments(pack),
            launcher=get_pack_launcher(pack),
            sweep=get_pack_fingerprint(pack),
        shell:
            JOB_SHELL
