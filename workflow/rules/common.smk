import json
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.specs.parse import load_specs

LEARNERS_FILE = config["learners"]
# Learner jobs read the file named here (locally, and on clusters where every job re-parses
# this Snakefile); a path in the rule's params would rerun every learner when it changes.
os.environ.update(ADAPTIVE_SNAKEMAKE_LEARNERS=LEARNERS_FILE)


def _load_specs():
    try:
        specs = load_specs(LEARNERS_FILE)
        if workflow.is_main_process:
            # Imports user code and adaptive: once, here, not again inside every job.
            from adaptive_snakemake.specs.validation import check_specs

            check_specs(specs, LEARNERS_FILE)
    except ConfigError as error:
        raise WorkflowError(f"invalid learners file:\n{error}") from None
    return specs


SPECS = {spec.name: spec for spec in _load_specs()}

if workflow.is_main_process:
    # snakemake-executor-plugin-slurm <= 2.8.0 takes a job cancelled with scancel for a
    # running one (sacct says "CANCELLED by <uid>") and would never resubmit it.
    from adaptive_snakemake.slurm.compat import fix_plugin_status_parsing

    fix_plugin_status_parsing()
SWEEPS = sorted({spec.sweep for spec in SPECS.values()})


def _names_regex(executors):
    sweeps = sorted(
        {s.sweep for s in SPECS.values() if (s.executor == "mpi4py") == executors}
    )
    if not sweeps:
        return "(?!)"  # matches nothing
    return "(" + "|".join(re.escape(sweep) for sweep in sweeps) + ")(/.+)?"


MPI_LEARNERS = _names_regex(executors=True)
OTHER_LEARNERS = _names_regex(executors=False)


def get_final_outputs():
    return ["results/summary.csv", *(f"results/plots/{sweep}.png" for sweep in SWEEPS)]


def get_result_files(wildcards):
    return [f"results/{name}/result.json" for name in SPECS]


def get_sweep_results(wildcards):
    return [
        f"results/{s.name}/result.json"
        for s in SPECS.values()
        if s.sweep == wildcards.sweep
    ]


def _sweep_fingerprint(spec):
    """Changes when the sweep's definition or goal does: a params entry, so that Snakemake
    reruns (and the runner continues or restarts) exactly the learners concerned."""
    return spec.sweep_fingerprint


def _threads(spec):
    """Cores to reserve on this machine. MPI rank 0 only hands out points and sleeps while
    the workers compute, so an MPI learner keeps tasks - 1 cores busy."""
    return max(1, spec.tasks - 1) if spec.executor == "mpi4py" else spec.tasks


# Resources each learner job may carry besides runtime (which grows per attempt).
LEARNER_RESOURCES = {
    "tasks": lambda spec: spec.tasks if spec.executor == "mpi4py" else None,
    "mem_mb": lambda spec: spec.resources.get("mem_mb"),
    "slurm_partition": lambda spec: spec.resources.get("slurm_partition"),
    "slurm_account": lambda spec: spec.resources.get("slurm_account"),
    "slurm_extra": lambda spec: spec.resources.get("slurm_extra"),
}


def per_learner(value_of, mpi):
    """`value_of(spec)` for the learners of one executor kind (MPI or not).

    A constant when all those learners agree: Snakemake calls a function several times
    per job, which at 10,000 learners costs seconds per function.
    """
    values = {value_of(s) for s in SPECS.values() if (s.executor == "mpi4py") == mpi}
    if len(values) == 1:
        return values.pop()

    def of_learner(wildcards):
        return value_of(SPECS[wildcards.name])

    return of_learner


def learner_resources(mpi):
    """The resources of LEARNER_RESOURCES that some learner sets, per_learner."""
    resources = {}
    for key, value_of in LEARNER_RESOURCES.items():
        value = per_learner(value_of, mpi)
        if value is not None:
            resources[key] = value
    return resources


def get_runtime(wildcards, attempt):
    """Minutes; grows per retry so a learner stopped by its walltime gets more next time."""
    base = SPECS[wildcards.name].resources["runtime"]
    return round(base * config["runtime_growth"] ** (attempt - 1))


def get_sweep_spec_json(wildcards):
    """The sweep's learner specs, for its plot."""
    specs = [s.to_dict() for s in SPECS.values() if s.sweep == wildcards.sweep]
    return json.dumps(specs)
