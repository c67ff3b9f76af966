"""Where the monitor keeps its files, relative to the workflow directory.

Everything private to the user (keys, pidfile, address, latest state) lives under
`.adaptive-snakemake/` (mode 0700); the metrics history is an ordinary log.
"""

import os
from pathlib import Path

STATE_DIR = ".adaptive-snakemake"


def state_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / STATE_DIR


def keys_dir(workdir: str | os.PathLike) -> Path:
    return state_dir(workdir) / "keys"


def monitor_file(workdir: str | os.PathLike) -> Path:
    """Tells jobs where the collector listens and which keys to use (no secrets inside)."""
    return state_dir(workdir) / "monitor.json"


def status_file(workdir: str | os.PathLike) -> Path:
    """Latest state per learner, rewritten atomically by the collector every second."""
    return state_dir(workdir) / "status.json"


def pid_file(workdir: str | os.PathLike) -> Path:
    """Locked by the running collector for its lifetime: one collector per workflow."""
    return state_dir(workdir) / "collector.pid"


def metrics_file(workdir: str | os.PathLike) -> Path:
    """Every valid record received, one JSON object per line (pandas reads it)."""
    return Path(workdir) / "logs" / "metrics.jsonl"


def collector_log(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / "logs" / "collector.log"


def learner_logs_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / "logs" / "learners"


def results_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / "results"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it readable by the user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
