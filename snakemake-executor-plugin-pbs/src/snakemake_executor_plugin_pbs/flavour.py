"""Which PBS answers on this login node: PBS Pro / OpenPBS, Torque, or Slurm's wrappers."""

from __future__ import annotations

import shutil
from pathlib import Path

from .proc import run

FLAVOURS = ("pbspro", "torque", "slurm-torque")


class FlavourError(Exception):
    """qstat is missing, or its answer fits no flavour."""


def detect_flavour(timeout: float = 30) -> tuple[str, str | None]:
    """The flavour, and a warning when it is a guess.

    The slurm-wlm-torque wrapper is a Perl script that rejects --version (``Unknown
    option: version``); PBS Pro prints ``pbs_version = 22.05.11``; Torque prints
    ``Version: 6.1.3``. Reading the wrapper's first bytes spares a qstat call.
    """
    qstat = shutil.which("qstat")
    if qstat is None:
        raise FlavourError("qstat not found on PATH: is this a PBS login node?")
    try:
        head = Path(qstat).read_bytes()[:8192]
    except OSError:
        head = b""
    if head.startswith(b"#!") and b"perl" in head.split(b"\n", 1)[0] and b"slurm" in head.lower():
        return "slurm-torque", None
    out = run([qstat, "--version"], timeout=timeout)
    text = (out.stdout + out.stderr).lower()
    if "pbs_version" in text:
        return "pbspro", None
    if "unknown option" in text:
        return "slurm-torque", None
    if "version:" in text:
        return "torque", None
    return "pbspro", (
        f"cannot tell the PBS flavour from `qstat --version` ({text.strip()[:200]!r}); "
        "assuming pbspro. Set --pbs-flavour (profile key pbs-flavour) to override."
    )
