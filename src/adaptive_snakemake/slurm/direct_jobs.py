"""Learner jobs with no snakemake inside: sbatch runs the learner's own command.

snakemake-executor-plugin-slurm makes every job run snakemake, which runs a second
snakemake (with srun) that runs the rule: about 4.4 s of start-up and 2-2.6 s of teardown
per job on the test cluster, for nothing a learner job needs. The main snakemake already
knows the job's whole shell command (`job.shellcmd`: the rule's shell with its params,
paths and resources filled in), so for the learner rules the job script is that command:

    set -e
    mkdir -p <output and log directories> state/.job-ends
    trap 'echo $? > state/.job-ends/"$SLURM_JOB_ID"' EXIT
    srun -n1 ... bash -s <<EOF
    <command>
    EOF

(an MPI learner's command, which starts its own `srun --mpi=... -n N`, runs in a subshell
instead: its `exec` must not replace the batch shell). The trap tells the main
snakemake at once that the job ends, and how (job_ends.py). An srun step, because
SLURM's walltime warning (`--signal=TERM@60`, not the B: form) reaches the processes of
job steps, not the batch shell. The learner writes its results itself; snakemake, as
always, checks them on the login node when sacct reports the job COMPLETED, and removes
them when it failed.

Only for the learner rules (their params hold `JobArguments`), only without software
deployment (conda, containers: those need snakemake in the job), and only for the plugin
versions in `TESTED` (pinned in pyproject.toml); everything else goes the plugin's way.
The script travels compressed and base64-encoded in sbatch's `--wrap` (the plugin quotes
only `"`; the kernel limits one argument to 128 KiB, and a pack's command holds every
learner's spec); one longer than `MAX_WRAP` even so goes the plugin's way. The step's
shell reads the command from its standard input, for the same limit.
"""

from __future__ import annotations

import base64
import gzip
import os
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version

from adaptive_snakemake import layout
from adaptive_snakemake.job.arguments import JobArguments
from adaptive_snakemake.slurm.compat import PLUGIN, _version_tuple
from adaptive_snakemake.slurm.job_ends import end_marker_lines

TESTED = ((2, 8, 0), (2, 8, 0))
MAX_WRAP = 100_000
_END = "ADAPTIVE_SNAKEMAKE_END_OF_COMMAND"
# A requeued job runs its script again with the same job id. The MPICH ranks of its first
# run, killed by the requeue, leave their shared-memory segment behind
# (/dev/shm/mpich_shm_<id>_0, named after the job and step ids), and the ranks of the new
# run's step 0 attach to it and hang or fail in MPI_Init. A step before the ranks' gives
# them another step id, hence a segment of their own. (</dev/null: srun passes its stdin to
# the task, and this script is bash's stdin.)
_FRESH_STEP_AFTER_REQUEUE = (
    'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then srun -n1 --nodes=1 true </dev/null; fi'
)


def direct_script(job) -> str | None:
    """The batch script of a learner job, or None where snakemake must run in the job."""
    if job.is_group() or not isinstance(job.params.get("learners"), JobArguments):
        return None
    if job.rule.workflow.deployment_settings.deployment_method:
        return None
    dirs = {os.path.dirname(path) for path in [*job.output, *job.log]} - {""}
    dirs = sorted(dirs | {layout.JOB_ENDS_DIR})
    lines = ["set -e", f"mkdir -p {' '.join(map(shlex.quote, dirs))}", *end_marker_lines()]
    command = job.shellcmd
    if job.resources.get("mpi"):  # (a Namedlist: `in` would look at its values)
        lines.append(_FRESH_STEP_AFTER_REQUEUE)
        # In a subshell: the command starts with `exec`, which would replace this shell,
        # and its EXIT trap (the end marker) would never run.
        command = f"(\n{command}\n)"
    else:
        cpus = f"--cpus-per-task={job.threads}"
        command = f"srun -n1 --nodes=1 {cpus} bash -s <<'{_END}'\n{command}\n{_END}"
    return "\n".join([*lines, command]) + "\n"


def wrap(script: str) -> str | None:
    """What sbatch --wrap runs: the script, decoded; no character the plugin's quoting or
    the login shell could change."""
    encoded = base64.b64encode(gzip.compress(script.encode())).decode()
    if len(encoded) > MAX_WRAP:
        return None
    return f"echo {encoded} | base64 -d | gzip -d | bash -s"


def install_direct_jobs() -> bool:
    """Make the slurm plugin submit learner jobs as their own commands; True if installed.

    Call in the main snakemake process (the Snakefile does).
    """
    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    executor = getattr(plugin, "Executor", None)
    original = getattr(executor, "format_job_exec", None)
    if original is None or getattr(original, "direct_learner_jobs", False):
        return False
    try:
        low, high = TESTED
        if not low <= _version_tuple(version(PLUGIN)) <= high:
            return False
    except PackageNotFoundError:
        return False

    def format_job_exec(self, job):
        script = direct_script(job)
        wrapped = wrap(script) if script is not None else None
        if wrapped is None:
            return original(self, job)
        return wrapped

    format_job_exec.direct_learner_jobs = True
    executor.format_job_exec = format_job_exec
    return True
