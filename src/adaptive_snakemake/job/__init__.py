"""What runs in a learner job: `python -m adaptive_snakemake.job ...`; mpi4py learners run
`python -m adaptive_snakemake.job.mpi_pool -m adaptive_snakemake.job ...` on every rank
(`mpi_pool`: rank 0 runs the job, the other ranks evaluate its points).

`__main__` takes the job's arguments, `lock` keeps a second job off the learner, `runner`
restores the checkpoint and runs the learner to its goal on an executor from `executors`,
`checkpoint` saves in adaptive's format, `learners` builds the adaptive learner of a spec,
`loop` shares the job's workers among its learners (one, or a pack), `arguments` is how
the workflow hands the job its learners.
"""
