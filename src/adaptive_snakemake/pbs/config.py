"""Settings shared by the PBS commands: environment variables, sidecar vars, flavour.

Every setting can be given as an environment variable (set it in your shell, or in the
profile's command lines); the submit command also takes the same as options.

=====================================  ==========================================  ========
ADAPTIVE_SNAKEMAKE_PBS_FLAVOUR         pbspro | torque | slurm-torque | auto        auto
ADAPTIVE_SNAKEMAKE_PBS_QUEUE           qsub -q                                      (none)
ADAPTIVE_SNAKEMAKE_PBS_ACCOUNT         qsub -A                                      (none)
ADAPTIVE_SNAKEMAKE_PBS_EXTRA_ARGS      more qsub arguments (shell syntax)           (none)
ADAPTIVE_SNAKEMAKE_PBS_LOG_DIR         where job stdout/stderr go                   logs/pbs
ADAPTIVE_SNAKEMAKE_PBS_NAME_MAX        longest job name (-N)                        15 or 236
ADAPTIVE_SNAKEMAKE_PBS_POLL_INTERVAL   seconds between the sidecar's qstat calls    15
ADAPTIVE_SNAKEMAKE_PBS_GRACE           seconds to wait for an exit marker           120
ADAPTIVE_SNAKEMAKE_PBS_QSTAT_TIMEOUT   seconds before a qstat call is abandoned     60
ADAPTIVE_SNAKEMAKE_PBS_CANCEL_ON_EXIT  1: the sidecar qdels abandoned jobs          1
ADAPTIVE_SNAKEMAKE_PBS_DIR             the state directory                          .snakemake/pbs
=====================================  ==========================================  ========
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from adaptive_snakemake.pbs.files import StateDir
from adaptive_snakemake.pbs.proc import run
from adaptive_snakemake.pbs.qstat import FLAVOURS

PREFIX = "ADAPTIVE_SNAKEMAKE_PBS_"
SIDECAR_VARS = "SNAKEMAKE_CLUSTER_SIDECAR_VARS"
SIDECAR_VARS_VERSION = 1


class ConfigError(ValueError):
    pass


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(PREFIX + name, "").strip()
    return value or default


def env_float(name: str, default: float) -> float:
    value = env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={value!r} is not a number") from None


def check_flavour(flavour: str) -> str:
    if flavour not in (*FLAVOURS, "auto"):
        raise ConfigError(
            f"unknown PBS flavour {flavour!r}; use one of {', '.join(FLAVOURS)} or auto"
        )
    return flavour


@dataclass(frozen=True)
class SidecarVars:
    """What the sidecar prints on its first line; snakemake hands it to every command."""

    pid: int
    state_dir: str
    cache: str
    flavour: str
    interval: float
    grace: float
    extra: dict

    def to_line(self) -> str:
        data = {
            "v": SIDECAR_VARS_VERSION,
            "pid": self.pid,
            "state_dir": self.state_dir,
            "cache": self.cache,
            "flavour": self.flavour,
            "interval": self.interval,
            "grace": self.grace,
            **self.extra,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_env(cls) -> SidecarVars | None:
        try:
            data = json.loads(os.environ.get(SIDECAR_VARS) or "")
            return cls(
                pid=int(data["pid"]),
                state_dir=str(data["state_dir"]),
                cache=str(data["cache"]),
                flavour=str(data["flavour"]),
                interval=float(data["interval"]),
                grace=float(data["grace"]),
                extra={k: v for k, v in data.items() if k not in _CORE_KEYS},
            )
        except (ValueError, KeyError, TypeError):
            return None


_CORE_KEYS = {"v", "pid", "state_dir", "cache", "flavour", "interval", "grace"}


def state_dir_for(vars: SidecarVars | None) -> StateDir:
    return StateDir(vars.state_dir if vars else None)


def resolve_flavour(requested: str | None, vars: SidecarVars | None, state: StateDir) -> str:
    """Explicit setting, else what the sidecar detected, else detect (once per state dir)."""
    flavour = check_flavour(requested or env("FLAVOUR") or "auto")
    if flavour != "auto":
        return flavour
    if vars and vars.flavour in FLAVOURS:
        return vars.flavour
    remembered = state.root / "flavour"
    try:
        cached = remembered.read_text().strip()
        if cached in FLAVOURS:
            return cached
    except FileNotFoundError:
        pass
    flavour = detect_flavour(state)
    state.root.mkdir(parents=True, exist_ok=True)
    remembered.write_text(flavour + "\n")
    return flavour


def detect_flavour(state: StateDir) -> str:
    """Tell PBS Pro, Torque and the slurm-wlm-torque wrapper apart from their qstat.

    The wrapper is a Perl script that rejects --version (``Unknown option: version``);
    PBS Pro prints ``pbs_version = 22.05.11``; Torque prints ``Version: 6.1.3``.
    """
    qstat = shutil.which("qstat")
    if qstat is None:
        raise ConfigError("qstat not found on PATH: is this a PBS login node?")
    try:
        head = Path(qstat).read_bytes()[:8192]
    except OSError:
        head = b""
    if head.startswith(b"#!") and b"perl" in head.split(b"\n", 1)[0] and b"slurm" in head.lower():
        return "slurm-torque"
    start = time.monotonic()
    out = run([qstat, "--version"], timeout=30)
    state.root.mkdir(parents=True, exist_ok=True)
    state.log_qstat_call("detect", "version", 0, out.rc, time.monotonic() - start)
    text = (out.stdout + out.stderr).lower()
    if "pbs_version" in text:
        return "pbspro"
    if "unknown option" in text:
        return "slurm-torque"
    if "version:" in text:
        return "torque"
    print(
        f"adaptive-snakemake: cannot tell the PBS flavour from `qstat --version` "
        f"({text.strip()[:200]!r}); assuming pbspro. Set {PREFIX}FLAVOUR to override.",
        file=sys.stderr,
    )
    return "pbspro"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
