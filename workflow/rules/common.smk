import json
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from adaptive_snakemake import layout
from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.specs.parse import load_specs


def _load_specs():
    learners_file = config["learners"]
    try:
        # Learners built in Python: imported and pickled once, by the main process; the
        # snakemake inside each cluster job reads what it wrote.
        from adaptive_snakemake.specs import python_sweeps

        build = None if workflow.is_main_process else python_sweeps.from_manifest
        specs = load_specs(learners_file, config["max_learners"], build)
        if workflow.is_main_process:
            # Imports user code and adaptive: once, here, not again inside every job.
            from adaptive_snakemake.specs.validation import check_specs

            check_specs(specs, learners_file)
    except ConfigError as error:
        raise WorkflowError(f"invalid learners file:\n{error}") from None
    return specs


def _load_monitor_settings():
    from adaptive_snakemake.metrics.settings import MonitorSettings

    try:
        return MonitorSettings.from_config(config.get("monitor"))
    except ConfigError as error:
        raise WorkflowError(f"invalid config:\n{error}") from None


SPECS = {spec.name: spec for spec in _load_specs()}
# Checked before anything runs (also by snakemake -n); only the main process uses them.
MONITOR = _load_monitor_settings() if workflow.is_main_process else None
SWEEP_MEMBERS = {}
for _spec in SPECS.values():
    SWEEP_MEMBERS.setdefault(_spec.sweep, []).append(_spec)
SWEEPS = sorted(SWEEP_MEMBERS)

if workflow.is_main_process:
    from adaptive_snakemake.slurm.compat import fix_plugin

    fix_plugin()


def _is_mpi(spec):
    """Learners whose job runs under the MPI launcher (rule learner_mpi)."""
    return spec.executor in ("mpi4py", "dask-mpi")


def _names_regex(mpi):
    sweeps = sorted({s.sweep for s in SPECS.values() if _is_mpi(s) == mpi})
    if not sweeps:
        return "(?!)"  # matches nothing
    return "(" + "|".join(re.escape(sweep) for sweep in sweeps) + ")(/.+)?"


MPI_LEARNERS = _names_regex(mpi=True)
OTHER_LEARNERS = _names_regex(mpi=False)


def get_final_outputs():
    plots = [layout.SWEEP_PLOT.format(sweep=sweep) for sweep in SWEEPS]
    return [layout.SUMMARY, *plots, *get_report_outputs()]


def get_result_files(wildcards):
    return [layout.RESULT_JSON.format(name=name) for name in SPECS]


def get_sweep_result_files(wildcards):
    """The results of a sweep's learners: it is done when they all exist."""
    return [
        layout.RESULT_JSON.format(name=s.name) for s in SWEEP_MEMBERS[wildcards.sweep]
    ]


def _dependency_markers(spec):
    return tuple(layout.SWEEP_DONE.format(sweep=sweep) for sweep in spec.after)


def get_dependencies(mpi):
    """The done-markers of the sweeps a learner waits for (learners.yaml: after)."""
    markers = per_learner(_dependency_markers, mpi)
    if callable(markers):
        return markers
    return list(markers)


def get_sweep_learner_files(wildcards):
    """The saved learners a sweep's picture is drawn from."""
    return [
        layout.LEARNER_PICKLE.format(name=s.name)
        for s in SWEEP_MEMBERS[wildcards.sweep]
    ]


def get_sweep_specs(wildcards, input):
    """The specs of the learners in `input`, as JSON, for the picture's labels and types.

    Takes `input` so that Snakemake treats it as derived from the input files and not as
    a rerun trigger of its own: the picture is redrawn when a learner's data changes, not
    when a run setting such as save_interval does.
    """
    return json.dumps([s.to_dict() for s in SWEEP_MEMBERS[wildcards.sweep]])


def get_learner_spec(wildcards):
    """The learner's spec; the job gets it as JSON on its command line (str(spec)).

    An object, not a string, on purpose: Snakemake reruns a job when a params value
    it can represent (str, number, list, ...) changes, and skips other values
    (snakemake/persistence: UNREPRESENTABLE). What should rerun a learner is
    `get_sweep_fingerprint`; resources, executor, tasks and intervals should not.
    """
    return SPECS[wildcards.name]


def get_launcher(wildcards, resources):
    """How the job starts python: under the MPI launcher for mpi4py learners (the slurm
    profile sets resources.mpi to srun), plainly otherwise. (A params function that takes
    resources is not a rerun trigger: switching profiles must not rerun learners.)"""
    spec = SPECS[wildcards.name]
    if _is_mpi(spec):
        from adaptive_snakemake.job.executors import mpi_ranks

        # dask-mpi: every rank runs the job; dask_mpi.initialize splits them (executors.py)
        workers = " -m mpi4py.futures" if spec.executor == "mpi4py" else ""
        ranks = mpi_ranks(spec.executor, resources.tasks)  # mpi4py: + the manager
        return f"{resources.mpi} -n {ranks} python{workers}"
    return "python"


def per_learner(value_of, mpi):
    """`value_of(spec)` for the learners of one executor kind (MPI or not).

    A constant when all those learners agree: Snakemake calls a function several times
    per job, which at 10,000 learners costs seconds per function.
    """
    values = {value_of(s) for s in SPECS.values() if _is_mpi(s) == mpi}
    if len(values) == 1:
        return values.pop()

    def of_learner(wildcards):
        return value_of(SPECS[wildcards.name])

    return of_learner


def _sweep_fingerprint(spec):
    """Changes when the sweep's definition or goal does: a params entry, so that Snakemake
    reruns (and the runner continues or restarts) exactly the learners concerned."""
    return spec.sweep_fingerprint


def get_sweep_fingerprint(mpi):
    return per_learner(_sweep_fingerprint, mpi)


def _threads(spec):
    """Cores to reserve on this machine: tasks. dask-mpi's scheduler rank only hands out
    work and sleeps while the workers compute, so it keeps tasks - 1 cores busy."""
    return max(1, spec.tasks - 1) if spec.executor == "dask-mpi" else spec.tasks


def get_threads(mpi):
    return per_learner(_threads, mpi)


# Resources each learner job may carry besides runtime (which grows per attempt).
LEARNER_RESOURCES = {
    "tasks": lambda spec: spec.tasks if _is_mpi(spec) else None,
    "mem_mb": lambda spec: spec.resources.get("mem_mb"),
    "slurm_partition": lambda spec: spec.resources.get("slurm_partition"),
    "slurm_account": lambda spec: spec.resources.get("slurm_account"),
    "slurm_extra": lambda spec: spec.resources.get("slurm_extra"),
}


def get_learner_resources(mpi):
    """The resources of LEARNER_RESOURCES that some learner sets, per_learner."""
    resources = {}
    for key, value_of in LEARNER_RESOURCES.items():
        value = per_learner(value_of, mpi)
        if value is not None:
            resources[key] = value
    return resources


def get_runtime(wildcards, attempt):
    """Minutes. A retry after a timeout gets more: runtime_growth per timeout the learner's
    bookkeeping records (at most 4); other failures (killed, node lost) keep the runtime.
    """
    base = SPECS[wildcards.name].resources["runtime"]
    if attempt == 1:
        return base  # no file read for the first attempt of 10,000 learners
    from adaptive_snakemake.job.bookkeeping import recorded_timeouts

    meta = layout.checkpoint_meta(layout.CHECKPOINT.format(name=wildcards.name))
    return round(base * config["runtime_growth"] ** min(recorded_timeouts(meta), 4))


# -- report (rules/report.smk) -------------------------------------------------------------------

# report_from: results (default; the report pages are drawn once the learners are done) or
# current (drawn now from what exists: results, checkpoints, metrics; always redrawn).
REPORT_CURRENT = config.get("report_from", "results") == "current"
SWEEPS_REGEX = "|".join(re.escape(sweep) for sweep in SWEEPS) or "(?!)"


def get_report_outputs():
    pages = [layout.SWEEP_REPORT.format(sweep=sweep) for sweep in SWEEPS]
    pictures = [layout.SWEEP_REPORT_PICTURE.format(sweep=sweep) for sweep in SWEEPS]
    run = [
        layout.RUN_REPORT_SUMMARY,
        layout.RUN_REPORT_TIMELINE,
        layout.RUN_REPORT_CONVERGENCE,
    ]
    return [*pages, *pictures, *run]


def get_report_sweep_inputs(wildcards):
    """The sweep's learners (results and data), or nothing for a report of the current state."""
    if REPORT_CURRENT:
        return []
    return [
        path
        for s in SWEEP_MEMBERS[wildcards.sweep]
        for path in (
            layout.LEARNER_PICKLE.format(name=s.name),
            layout.RESULT_JSON.format(name=s.name),
        )
    ]


def get_report_run_inputs(wildcards):
    """The summary (after every learner), or nothing for a report of the current state."""
    return [] if REPORT_CURRENT else [layout.SUMMARY]


def get_report_snapshot(wildcards):
    """A params value that changes on every call in current mode: the pages are redrawn each
    time; constant otherwise (redrawn when the learners' files change)."""
    if REPORT_CURRENT:
        import time

        return f"current state at {time.time():.3f}"
    return "results"


def get_sweep_report_learners(wildcards):
    """The sweep's learners as the report job needs them (results.report.Learners: shown
    short in the report, not a rerun trigger)."""
    from adaptive_snakemake.results.report import Learners

    return Learners.of_specs(SWEEP_MEMBERS[wildcards.sweep])


def get_run_report_learners(wildcards):
    """Every learner, as get_sweep_report_learners."""
    from adaptive_snakemake.results.report import Learners

    return Learners.of_specs(SPECS.values())
