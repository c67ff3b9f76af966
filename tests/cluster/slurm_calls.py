"""Counting the SLURM commands a run makes: wrappers first on PATH that log each call and
exec the real binary. Calls from inside a job (SLURM_JOB_ID set) are marked `job`, the
others (the main snakemake process on the login node) `main`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

COUNTED = ("sbatch", "sacct", "sacctmgr", "scontrol", "squeue", "sinfo", "sshare")


def counting_path(bin_dir: Path, log: Path, path: str) -> str:
    """`path` with the wrappers in front; each call appends `<unix time> <main|job> <command>
    <args>` to `log`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log.touch()
    for name in COUNTED:
        real = shutil.which(name)
        if real is None:
            continue
        wrapper = bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            'if [ -n "$SLURM_JOB_ID" ]; then where=job; else where=main; fi\n'
            f'echo "$(date +%s.%N) $where {name} $*" >> {log}\n'
            f'exec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{path}"


def read_calls(log: Path) -> list[tuple[float, str, str]]:
    """(time, where, command with its arguments) of every call, in order."""
    calls = []
    for line in log.read_text().splitlines():
        stamp, where, command = line.split(" ", 2)
        calls.append((float(stamp), where, command))
    return calls
