"""How jobs find the collector: endpoint, keys and record size limit.

The workflow publishes one small JSON object (no secrets, only paths to key files):

    {"v": 1, "enabled": true, "endpoint": "tcp://login1:23456", "curve": true,
     "server_public_key": "/abs/.adaptive-snakemake/keys/server.key",
     "client_secret_key": "/abs/.adaptive-snakemake/keys/client.key_secret",
     "max_record_bytes": 4096}

or {"v": 1, "enabled": false}. Jobs look for it, first found wins, in the environment
variable ADAPTIVE_SNAKEMAKE_MONITOR (the JSON itself, or "off"; set in snakemake's
environment by `start_collector`, so local jobs, SLURM jobs (--export=ALL) and PBS jobs
(qsub -V) inherit it), then in the file .adaptive-snakemake/monitor.json of the
workflow directory (shared file system).
"""

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_text
from adaptive_snakemake.layout import ensure_private_dir, keys_dir, monitor_file, private_dir
from adaptive_snakemake.metrics.keys import KeyFiles
from adaptive_snakemake.metrics.record import DEFAULT_MAX_RECORD_BYTES
from adaptive_snakemake.metrics.settings import MonitorSettings

ENV_VAR = "ADAPTIVE_SNAKEMAKE_MONITOR"
PORT_BASE = 20000
PORT_SPAN = 20000


def default_port(workdir: str | os.PathLike) -> int:
    """A port fixed per workflow directory, so a restarted collector is found again."""
    path = os.path.realpath(workdir).encode()
    return PORT_BASE + int.from_bytes(hashlib.sha256(path).digest()[:8], "big") % PORT_SPAN


def collector_port(workdir: str | os.PathLike, settings: MonitorSettings) -> int:
    return settings.port if settings.port is not None else default_port(workdir)


def bind_endpoint(workdir: str | os.PathLike, settings: MonitorSettings) -> str:
    return f"tcp://{settings.bind}:{collector_port(workdir, settings)}"


@dataclass(frozen=True)
class MonitorAddress:
    """What a job needs to reach the collector; `enabled` False means: only log lines."""

    enabled: bool
    endpoint: str | None = None
    curve: bool = True
    server_public_key: str | None = None
    client_secret_key: str | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    @classmethod
    def disabled(cls) -> "MonitorAddress":
        return cls(enabled=False)

    @classmethod
    def for_workflow(
        cls, workdir: str | os.PathLike, settings: MonitorSettings, keys: KeyFiles | None
    ) -> "MonitorAddress":
        if not settings.enabled:
            return cls.disabled()
        host = settings.host or socket.gethostname()
        return cls(
            enabled=True,
            endpoint=f"tcp://{host}:{collector_port(workdir, settings)}",
            curve=settings.curve,
            server_public_key=str(keys.server_public) if settings.curve else None,
            client_secret_key=str(keys.client_secret) if settings.curve else None,
            max_record_bytes=settings.max_record_bytes,
        )

    def to_json(self) -> str:
        if not self.enabled:
            return json.dumps({"v": 1, "enabled": False})
        return json.dumps({"v": 1, **self.__dict__}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "MonitorAddress":
        """Parse the published JSON; ValueError if it is not one."""
        if text.strip().lower() in ("off", "0", "false", "disabled"):
            return cls.disabled()
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != 1 or "enabled" not in data:
            raise ValueError("not an adaptive-snakemake monitor address")
        if not data["enabled"]:
            return cls.disabled()
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if not isinstance(fields.get("endpoint"), str):
            raise ValueError("monitor address without endpoint")
        return cls(**fields)


def publish_address(workdir: str | os.PathLike, address: MonitorAddress) -> None:
    """Write .adaptive-snakemake/monitor.json atomically and export it to child processes."""
    ensure_private_dir(private_dir(workdir))
    target = monitor_file(workdir)
    atomic_write_text(target, address.to_json() + "\n")
    # Set in snakemake's own environment: local jobs inherit it, SLURM jobs get --export=ALL.
    os.environ[ENV_VAR] = address.to_json()


def find_address(workdir: str | os.PathLike | None = None) -> MonitorAddress:
    """The address a job should report to; disabled if none is published or readable."""
    text = os.environ.get(ENV_VAR)
    if text:
        try:
            return MonitorAddress.from_json(text)
        except (ValueError, TypeError):
            pass  # a broken variable must not cost the job its metrics: try the file
    if workdir is not None:
        try:
            return MonitorAddress.from_json(monitor_file(workdir).read_text())
        except (OSError, ValueError, TypeError):
            pass
    return MonitorAddress.disabled()


def resolve_key_path(path: str, workdir: str | os.PathLike | None) -> Path:
    """A published key path, or the same file name under this workflow's key directory.

    Compute nodes may mount the workflow directory under another absolute path.
    """
    candidate = Path(path)
    if candidate.exists() or workdir is None:
        return candidate
    return keys_dir(workdir) / candidate.name
