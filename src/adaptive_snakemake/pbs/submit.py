"""cluster-generic submit command: qsub one snakemake jobscript, print the job id.

The plugin runs ``<submit-cmd> "<jobscript>"`` through the shell, with the jobscript last;
snakemake's jobscript carries the job's properties as a JSON comment
(``# properties = {"rule": ..., "threads": ..., "resources": {...}, "wildcards": ...}``).
The first line we print is taken as the job id.

What is asked of PBS:

- cores and ranks: ``ncpus = max(threads, tasks * cpus_per_task)``; ``mpiprocs = tasks``
  (the MPI ranks of ``{resources.mpi} -n {resources.tasks}``), 1 without ``tasks``;
- memory ``mem_mb``, walltime ``runtime`` (minutes), both snakemake's standard resources;
- queue / account / extra arguments from options or ``ADAPTIVE_SNAKEMAKE_PBS_*``, and
  per rule from the resources ``pbs_queue``, ``pbs_account``, ``pbs_extra``;
- one node: the learners' parallelism lives inside one job.

The job runs a copy of the jobscript whose EXIT trap writes the script's exit code to
``<state>/exit/<token>``: the marker the status command falls back on when qstat cannot
say how the job ended (see :mod:`adaptive_snakemake.pbs.decide`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import secrets
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from adaptive_snakemake.pbs.config import (
    SidecarVars,
    env,
    env_float,
    resolve_flavour,
    state_dir_for,
)
from adaptive_snakemake.pbs.files import StateDir
from adaptive_snakemake.pbs.proc import run
from adaptive_snakemake.pbs.qstat import FLAVOURS

NAME_MAX = {"pbspro": 236, "torque": 15, "slurm-torque": 15}
_JOB_ID = re.compile(r"^[0-9]+(\[[0-9]*\])?(\.[A-Za-z0-9_.-]+)?$")


class SubmitError(Exception):
    pass


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


def read_job_properties(jobscript: str | os.PathLike) -> dict:
    with open(jobscript, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# properties = "):
                return json.loads(line[len("# properties = ") :])
    raise SubmitError(f"{jobscript}: no '# properties = ...' line; not a snakemake jobscript?")


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
    """The qsub command line; ``-V`` passes the environment (venv PATH, sidecar vars).

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


def wrap_jobscript(text: str, marker: Path) -> str:
    """The jobscript with an EXIT trap that records its exit code in ``marker``.

    Write-then-rename, so a reader never sees a half-written code. A job killed by a
    signal (qdel, walltime) gets no marker: it did not finish.
    """
    lines = text.splitlines()
    shebang = lines[0] if lines and lines[0].startswith("#!") else "#!/bin/sh"
    body = lines[1:] if lines and lines[0].startswith("#!") else lines
    quoted = shlex.quote(str(marker))
    trap = (
        f"__asm_marker={quoted}\n"
        'trap \'__asm_rc=$?; printf "%s\\n" "$__asm_rc" > "$__asm_marker.tmp.$$" '
        '&& mv -f "$__asm_marker.tmp.$$" "$__asm_marker"\' EXIT\n'
    )
    header = "# adaptive-snakemake: exit marker written by the trap below\n"
    return f"{shebang}\n{header}{trap}" + "\n".join(body) + "\n"


def parse_job_id(stdout: str) -> str:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if _JOB_ID.match(line):
            return line
    raise SubmitError(f"qsub printed no job id: {stdout.strip()[:500]!r}")


def submit(args: argparse.Namespace) -> str:
    vars = SidecarVars.from_env()
    state = StateDir(args.state_dir) if args.state_dir else state_dir_for(vars)
    state.ensure()
    flavour = resolve_flavour(args.flavour, vars, state)
    extra = tuple(shlex.split(args.extra if args.extra is not None else env("EXTRA_ARGS", "")))
    request = request_from_properties(
        read_job_properties(args.jobscript),
        queue=args.queue or env("QUEUE"),
        account=args.account or env("ACCOUNT"),
        extra=extra,
    )
    name_max = args.name_max or int(env_float("NAME_MAX", 0)) or None
    token = f"{request.name[:100]}.{secrets.token_hex(4)}"
    log_dir = Path(args.log_dir or env("LOG_DIR", "logs/pbs")).absolute()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{token}.log"
    script = state.scripts_dir / f"{token}.sh"
    script.write_text(wrap_jobscript(Path(args.jobscript).read_text(), state.marker(token)))
    argv = qsub_argv(flavour, request, str(script), str(log), name_max)
    if args.dry_run:
        print(shlex.join(argv))
        return ""
    try:
        out = run(argv, timeout=args.timeout)
    finally:
        script.unlink(missing_ok=True)  # qsub keeps its own copy of the script
    if out.error or out.rc != 0:
        detail = out.error or (out.stderr.strip() or out.stdout.strip())
        raise SubmitError(f"{shlex.join(argv)}\nfailed (exit {out.rc}): {detail}")
    job_id = parse_job_id(out.stdout)
    state.register(job_id, token, request.name)
    return job_id


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adaptive_snakemake.pbs.submit",
        description="Submit a snakemake jobscript with qsub; print the job id.",
    )
    p.add_argument(
        "--flavour", choices=[*FLAVOURS, "auto"], help="pbspro | torque | slurm-torque | auto"
    )
    p.add_argument("--queue", help="qsub -q (default: $ADAPTIVE_SNAKEMAKE_PBS_QUEUE)")
    p.add_argument("--account", help="qsub -A (default: $ADAPTIVE_SNAKEMAKE_PBS_ACCOUNT)")
    p.add_argument("--extra", help="more qsub arguments, shell syntax")
    p.add_argument("--log-dir", help="job stdout/stderr directory (default logs/pbs)")
    p.add_argument("--name-max", type=int, help="longest job name the server accepts")
    p.add_argument("--state-dir", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for qsub")
    p.add_argument("--dry-run", action="store_true", help="print the qsub line, submit nothing")
    p.add_argument("jobscript")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        job_id = submit(args)
    except (SubmitError, OSError, ValueError) as e:
        print(f"adaptive-snakemake pbs submit: {e}", file=sys.stderr)
        return 1
    if job_id:
        print(job_id)
    return 0


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


if __name__ == "__main__":
    # Ctrl-C reaches every process in snakemake's foreground group; see proc.py.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main())
