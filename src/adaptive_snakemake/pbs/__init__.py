"""PBS Pro / Torque support for snakemake-executor-plugin-cluster-generic.

The plugin calls four commands; each is a module runnable with ``python -m``:

``submit``   builds the qsub line from the job's properties, submits, prints the job id.
``status``   prints running|success|failed for one job id, answered from the sidecar's cache.
``cancel``   qdel for the given ids, in one call.
``sidecar``  one process beside snakemake: ONE qstat per polling round for all of this
             workflow's active jobs, written atomically to a cache the status command reads.

Everything they share lives under the state directory (default ``.snakemake/pbs/``,
see :mod:`adaptive_snakemake.pbs.files`). These modules import nothing heavy: ``status``
runs once per job per round, so its start-up time is the whole cost of a status check.
"""
