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
            # Imports user code and adaptive: once, here, not again inside every job; adaptive
            # without the modules it loads and a check never uses (lazy_imports.py: 0.6 s).
            from adaptive_snakemake.lazy_imports import defer
            from adaptive_snakemake.specs.validation import check_specs

            defer()

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


def _load_packs(remember=False):
    """The packs of the sweeps with `pack: N` (specs/packs.py). The main process remembers
    them in state/.packs/ when a run starts (remember_packs); the snakemake inside a
    cluster job reads what it wrote."""
    from adaptive_snakemake.specs.packs import sweep_packs

    packs = []
    for sweep, members in SWEEP_MEMBERS.items():
        size = members[0].pack
        if size > 1:
            names = [spec.name for spec in members]
            packs.extend(sweep_packs(sweep, names, size, remember=remember))
    return packs


def remember_packs():
    """When a run starts (onstart: not in a dry run, which writes nothing): the packs'
    membership and the specs each pack's job reads (job/arguments.py)."""
    from adaptive_snakemake.job.arguments import write_specs

    for pack in _load_packs(remember=True):
        specs = [SPECS[name] for name in pack.members]
        write_specs(layout.PACK_SPECS.format(pack=pack.id), specs)


PACKS = _load_packs()

if workflow.is_main_process:
    from adaptive_snakemake.slurm.compat import fix_plugin
    from adaptive_snakemake.slurm.direct_jobs import install_direct_jobs

    fix_plugin()
    install_direct_jobs()  # SLURM learner jobs run their command, no snakemake inside


def _is_mpi(spec):
    """Learners whose job gets `tasks` MPI tasks and the MPI launcher (rule learner_mpi)."""
    return spec.executor in ("mpi4py", "dask-mpi", "ipyparallel")


def _names_regex(mpi):
    """The learners that have a job of their own (rules learner and learner_mpi)."""
    sweeps = sorted(
        {s.sweep for s in SPECS.values() if _is_mpi(s) == mpi and s.pack == 1}
    )
    if not sweeps:
        return "(?!)"  # matches nothing
    return "(" + "|".join(re.escape(sweep) for sweep in sweeps) + ")(/.+)?"


MPI_LEARNERS = _names_regex(mpi=True)
OTHER_LEARNERS = _names_regex(mpi=False)


def get_final_outputs():
    """What a run makes: the summary, a picture per sweep and, with report_at_end, the
    report's pages (else `snakemake report_pages` draws them when asked for: they take
    longer than the summary and pictures, seconds at 20 learners, a minute at 10,000).
    """
    plots = [layout.SWEEP_PLOT.format(sweep=sweep) for sweep in SWEEPS]
    pages = get_report_outputs() if config["report_at_end"] else []
    return [layout.SUMMARY, *plots, *pages]


def _sweep_result_files(sweep):
    """The results of a sweep's learners: their result.json files, or for a packed sweep
    its packs' results files (layout.PACK_RESULTS: one input per pack)."""
    members = SWEEP_MEMBERS[sweep]
    if members[0].pack > 1:
        return [get_pack_results(pack) for pack in PACKS_OF_SWEEP[sweep]]
    return [layout.RESULT_JSON.format(name=s.name) for s in members]


def get_result_files(wildcards):
    return [path for sweep in SWEEP_MEMBERS for path in _sweep_result_files(sweep)]


def get_sweep_result_files(wildcards):
    """The results of a sweep's learners: it is done when they all exist."""
    return _sweep_result_files(wildcards.sweep)


def _dependency_markers(spec):
    return tuple(layout.SWEEP_DONE.format(sweep=sweep) for sweep in spec.after)


def get_dependencies(mpi):
    """The done-markers of the sweeps a learner waits for (learners.yaml: after)."""
    markers = per_learner(_dependency_markers, mpi)
    if callable(markers):
        return markers
    return list(markers)


def get_sweep_learner_files(wildcards):
    """The saved learners a sweep's picture is drawn from: the first ones (results/drawn.py)."""
    from adaptive_snakemake.results.drawn import drawn_learners

    members = SWEEP_MEMBERS[wildcards.sweep]
    drawn = members[: drawn_learners(members[0].learner, len(members))]
    return [layout.LEARNER_PICKLE.format(name=s.name) for s in drawn]


def get_sweep_specs(wildcards, input):
    """The specs of the learners in `input`, as JSON, for the picture's labels and types.

    Takes `input` so that Snakemake treats it as derived from the input files and not as
    a rerun trigger of its own: the picture is redrawn when a learner's data changes, not
    when a run setting such as save_interval does.
    """
    return (
        "[" + ",".join(str(s) for s in SWEEP_MEMBERS[wildcards.sweep]) + "]"
    )  # (JSON, cached)


def get_job_arguments(wildcards):
    """The learner's spec and checkpoint, as the job takes them (job/arguments.py: not a
    rerun trigger; what reruns a learner is `get_sweep_fingerprint`)."""
    from adaptive_snakemake.job.arguments import JobArguments

    return JobArguments(
        [SPECS[wildcards.name]], [layout.CHECKPOINT.format(name=wildcards.name)]
    )


def _launcher(spec, resources):
    if _is_mpi(spec):
        from adaptive_snakemake.job.executors import mpi_ranks

        # mpi4py: rank 0 runs the job, the others evaluate its points (job/mpi_pool.py);
        # dask-mpi: every rank runs the job; dask_mpi.initialize splits them (executors.py)
        workers = (
            " -m adaptive_snakemake.job.mpi_pool" if spec.executor == "mpi4py" else ""
        )
        launcher = resources.get("mpi_launcher", "mpiexec")
        # ipyparallel: python once; it starts its engines with the launcher (executors.py)
        if spec.executor == "ipyparallel":
            from shlex import quote

            return f"env ADAPTIVE_SNAKEMAKE_MPI_LAUNCHER={quote(launcher)} python"
        ranks = mpi_ranks(spec.executor, resources.tasks)  # mpi4py: + the manager
        return f"{launcher} -n {ranks} python{workers}"
    return "python"


def _learner_launcher(wildcards, resources):
    return _launcher(SPECS[wildcards.name], resources)


def get_launcher(mpi):
    """How the job starts python: under the MPI launcher for MPI learners
    (resources.mpi_launcher, set by the cluster profiles; mpiexec by default), plainly
    otherwise. (A params function that takes resources is not a rerun trigger: switching
    profiles must not rerun learners; nor does ShellText, for plain python.)"""
    from adaptive_snakemake.job.arguments import ShellText

    return _learner_launcher if mpi else ShellText("python")


def per_learner(value_of, mpi):
    """`value_of(spec)` for the learners of one executor kind (MPI or not).

    A constant when all those learners agree: Snakemake calls a function several times
    per job, which at 10,000 learners costs seconds per function.
    """
    values = {value_of(s) for s in SPECS.values() if _is_mpi(s) == mpi and s.pack == 1}
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


# The slurm plugin treats a job with an `mpi` resource as an MPI job: sbatch --ntasks=tasks
# and one CPU per rank, and no srun around the rule (its launcher starts the ranks). The
# launcher itself is resources.mpi_launcher (get_launcher).
MPI_RESOURCES = {"mpi": "mpiexec", "cpus_per_task": 1}


def _runtime(spec, names, attempt):
    """Minutes. A retry after a timeout gets more: runtime_growth per timeout the learners'
    bookkeeping records (at most 4); other failures (killed, node lost) keep the runtime.
    """
    base = spec.resources["runtime"]
    if attempt == 1:
        return base  # no file read for the first attempt of 10,000 learners
    from adaptive_snakemake.job.bookkeeping import recorded_timeouts

    timeouts = max(
        recorded_timeouts(layout.checkpoint_meta(layout.CHECKPOINT.format(name=name)))
        for name in names
    )
    return round(base * config["runtime_growth"] ** min(timeouts, 4))


def get_runtime(wildcards, attempt):
    return _runtime(SPECS[wildcards.name], [wildcards.name], attempt)


# -- packs: the jobs of sweeps with `pack`, one per N learners (rules/learners.smk) --------------


def _pack_rule_names():
    names = {}
    for pack in PACKS:
        name = f"pack_{re.sub('[^A-Za-z0-9_]', '_', pack.sweep)}_{pack.index}"
        while name in names.values():
            name += "_"  # two sweep names that differ only in punctuation
        names[pack] = name
    return names


PACK_RULE_NAMES = _pack_rule_names()
PACKS_OF_SWEEP = {}
for _pack in PACKS:
    PACKS_OF_SWEEP.setdefault(_pack.sweep, []).append(_pack)


def get_pack_rule_name(pack):
    return PACK_RULE_NAMES[pack]


def _pack_spec(pack):
    """The settings of a pack's job: its sweep's, the same for every member."""
    return SPECS[pack.members[0]]


def get_pack_files(pack, pattern):
    return [pattern.format(name=name) for name in pack.members]


def get_pack_results(pack):
    return layout.PACK_RESULTS.format(pack=pack.id)


def get_pack_log(pack):
    return layout.PACK_LOG.format(pack=pack.id)


def get_pack_dependencies(pack):
    return list(_dependency_markers(_pack_spec(pack)))


def get_pack_threads(pack):
    return _threads(_pack_spec(pack))


def get_pack_resources(pack):
    spec = _pack_spec(pack)
    resources = {}
    for key, value_of in LEARNER_RESOURCES.items():
        value = value_of(spec)
        if value is not None:
            resources[key] = value
    if _is_mpi(spec):
        resources.update(MPI_RESOURCES)

    def runtime(wildcards, attempt):
        return _runtime(spec, pack.members, attempt)

    resources["runtime"] = runtime
    return resources


def get_pack_arguments(pack):
    from adaptive_snakemake.job.arguments import JobArguments

    specs = [SPECS[name] for name in pack.members]
    specs_file = layout.PACK_SPECS.format(pack=pack.id)
    checkpoints = get_pack_files(pack, layout.CHECKPOINT)
    return JobArguments(specs, checkpoints, specs_file, get_pack_results(pack))


def get_pack_launcher(pack):
    spec = _pack_spec(pack)

    def launcher(wildcards, resources):
        return _launcher(spec, resources)

    return launcher


def get_pack_fingerprint(pack):
    """The sweep's fingerprint, as for a learner of its own: packing reruns nothing."""
    return _sweep_fingerprint(_pack_spec(pack))


# The job of a learner rule: the learners' specs and paths, each learner's files once. Shared
# word for word by both kinds of rule, so that Snakemake (whose rerun triggers include the
# shell text) reruns nothing when a sweep is packed or unpacked. The job's own output goes to
# the first log: the learner's, or the pack's. `exec`: see rule learner.
JOB_SHELL = (
    "exec {params.launcher} -m adaptive_snakemake.job {params.learners}"
    " --learner-pickle {output.learner:q} --result {output.result:q}"
    " --log {log.learner:q} --runtime {resources.runtime} >> {log[0]:q} 2>&1"
)


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
