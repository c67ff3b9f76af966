"""What is asked of PBS: the qsub command line and the job script, built from a job.

- cores and ranks: ``ncpus = max(threads, tasks * cpus_per_task)``; ``mpiprocs = tasks``
  (the MPI ranks of ``{resources.mpi} -n {resources.tasks}``), 1 without ``tasks``;
- memory ``mem_mb``, walltime ``runtime`` (minutes), both snakemake's standard resources;
- queue / account / extra arguments from the executor settings, and per rule from the
  resources ``pbs_queue``, ``pbs_account``, ``pbs_extra``;
- one node: the parallelism of a job lives inside it.

The job script is snakemake's, with an EXIT trap that writes the script's exit code to
an exit marker: the evidence the status rules fall back on when qstat cannot say how the
job ended (see :mod:`snakemake_executor_plugin_pbs.status`).
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

NAME_MAX = {"pbspro": 236, "torque": 15, "slurm-torque": 15}
_JOB_ID = re.compile(r"^[0-9]+(\[[0-9]*\])?(\.[A-Za-z0-9_.-]+)?$")


class SubmitError(Exception):
    """qsub failed or printed no job id."""


@dataclass(frozen=True)
class JobRequest:
    name: str
    ncpus: int
    mpiprocs: int
    mem_mb: int | None
    runtime_min: float | None
    queue: str | None
    account: str | None
    extra: tuple[str, ...] = ()


def request_from_properties(
    props: dict,
    queue: str | None = None,
    account: str | None = None,
    extra: tuple[str, ...] = (),
) -> JobRequest:
    res = props.get("resources") or {}
    tasks = _positive_int(res.get("tasks"))
    cpus_per_task = _positive_int(res.get("cpus_per_task")) or 1
    threads = _positive_int(props.get("threads")) or 1
    ncpus = max(threads, (tasks or 1) * cpus_per_task)
    return JobRequest(
        name=readable_name(props),
        ncpus=ncpus,
        mpiprocs=tasks or 1,
        mem_mb=_positive_int(res.get("mem_mb")),
        runtime_min=_positive_float(res.get("runtime")),
        queue=_str(res.get("pbs_queue")) or queue,
        account=_str(res.get("pbs_account")) or account,
        extra=tuple(extra) + tuple(shlex.split(_str(res.get("pbs_extra")) or "")),
    )


def readable_name(props: dict) -> str:
    """``<rule>.<wildcard values>``, sanitised: e.g. ``learner.h_pow~0_a~0.1``."""
    head = props.get("rule") or props.get("groupid") or "job"
    wildcards = props.get("wildcards") or {}
    values = [str(v) for v in wildcards.values()] if isinstance(wildcards, dict) else []
    return sanitize_name(".".join([head, *values]))


def sanitize_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.~+-]+", "_", name).strip("_.")
    if not name or not name[0].isalnum():  # PBS: the first character must be alphanumeric
        name = "j" + name
    return name


def job_name(name: str, limit: int) -> str:
    """A ``-N`` value of at most ``limit`` characters, keeping distinct names distinct.

    Old Torque and PBS servers refuse names over 15 characters or not starting with a
    letter. Too long: drop the rule (``learner.h_pow-0`` -> ``h_pow-0``); still too long:
    cut, and end in 4 hex digits of the full name's hash so that two learners differing
    only at the end still differ. The log file keeps the full name.
    """
    name = name.replace("~", "-").replace("+", "-")  # job names: alphanumerics, _ . - only
    if not name[:1].isalpha():
        name = "j" + name
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:4]
    _, _, labels = name.partition(".")
    base = labels if labels[:1].isalpha() else name
    if len(base) <= limit:
        return base
    if limit < 6:
        return ("j" + digest)[:limit]
    return f"{base[: limit - 5].rstrip('._-')}-{digest}"


def format_walltime(minutes: float) -> str:
    seconds = max(1, math.ceil(float(minutes) * 60))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def qsub_argv(
    flavour: str, request: JobRequest, script: str, log: str, name_max: int | None = None
) -> list[str]:
    """The qsub command line; ``-V`` passes the environment (the venv's PATH above all).

    Torque and the slurm wrapper get ONE ``-l`` with every resource: the wrapper keeps only
    the last ``-l`` it is given (``'l=s'`` in its GetOptions), so a separate
    ``-l walltime=..`` silently dropped the cores and memory. For the same reason, ``-l``
    options among the extra arguments are merged into it for the wrapper.
    """
    limit = name_max or NAME_MAX[flavour]
    argv = ["qsub", "-N", job_name(request.name, limit), "-V", "-j", "oe", "-o", log]
    mem = f"mem={request.mem_mb}mb" if request.mem_mb else None
    walltime = f"walltime={format_walltime(request.runtime_min)}" if request.runtime_min else None
    extra = list(request.extra)
    if flavour == "pbspro":
        chunk = f"select=1:ncpus={request.ncpus}:mpiprocs={request.mpiprocs}"
        argv += ["-l", f"{chunk}:{mem}" if mem else chunk]
        if walltime:
            argv += ["-l", walltime]
    else:  # torque, and the slurm-wlm-torque wrapper
        resources = [f"nodes=1:ppn={request.ncpus}", mem, walltime]
        if flavour == "slurm-torque":
            resources += _take_resource_options(extra)
        argv += ["-l", ",".join(r for r in resources if r)]
    if request.queue:
        argv += ["-q", request.queue]
    if request.account:
        argv += ["-A", request.account]
    return [*argv, *extra, script]


def _take_resource_options(args: list[str]) -> list[str]:
    """Remove ``-l VALUE`` / ``-lVALUE`` from ``args`` (in place); return the values."""
    values, kept, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg == "-l" and i + 1 < len(args):
            values.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("-l") and len(arg) > 2:
            values.append(arg[2:])
        else:
            kept.append(arg)
        i += 1
    args[:] = kept
    return values


def job_script(text: str, marker: Path) -> str:
    """Snakemake's job script with an EXIT trap that records its exit code in ``marker``.

    Write-then-rename, so a reader never sees a half-written code. A job killed by a
    signal (qdel, walltime) gets no marker: it did not finish.
    """
    lines = text.splitlines()
    shebang = lines[0] if lines and lines[0].startswith("#!") else "#!/bin/sh"
    body = lines[1:] if lines and lines[0].startswith("#!") else lines
    quoted = shlex.quote(str(marker))
    trap = (
        f"__pbs_marker={quoted}\n"
        'trap \'__pbs_rc=$?; printf "%s\\n" "$__pbs_rc" > "$__pbs_marker.tmp.$$" '
        '&& mv -f "$__pbs_marker.tmp.$$" "$__pbs_marker"\' EXIT\n'
    )
    header = "# snakemake-executor-plugin-pbs: exit marker written by the trap below\n"
    return f"{shebang}\n{header}{trap}" + "\n".join(body) + "\n"


def parse_job_id(stdout: str) -> str:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if _JOB_ID.match(line):
            return line
    raise SubmitError(f"qsub printed no job id: {stdout.strip()[:500]!r}")


def _positive_int(value) -> int | None:
    try:
        number = int(math.ceil(float(value)))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _positive_float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _str(value) -> str | None:
    return str(value) if value not in (None, "") else None
