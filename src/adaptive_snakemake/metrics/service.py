"""Start and stop the workflow's collector.

workflow/rules/monitor.smk calls `start_collector` at onstart (with snakemake's pid as the
parent the collector watches) and `stop_collector` at onsuccess and onerror.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from adaptive_snakemake import layout
from adaptive_snakemake.metrics.address import MonitorAddress, publish_address
from adaptive_snakemake.metrics.keys import ensure_keys
from adaptive_snakemake.metrics.pidfile import running_collector
from adaptive_snakemake.metrics.settings import MonitorSettings
from adaptive_snakemake.processes import is_alive

_spawned: list[subprocess.Popen] = []  # kept so Python reaps them without ResourceWarnings


def start_collector(
    workdir: str | os.PathLike, settings: MonitorSettings, parent_pid: int
) -> int | None:
    """Publish the monitor address and start the collector in the background; its pid.

    Returns at once (the collector binds in its own time). A no-op returning the pid if
    a live collector already serves `workdir`; None (and jobs told "off") if disabled.
    Also sets ADAPTIVE_SNAKEMAKE_MONITOR in this process's environment for the jobs.
    """
    workdir = Path(workdir).resolve()
    if not settings.enabled:
        publish_address(workdir, MonitorAddress.disabled())
        return None
    keys = ensure_keys(workdir) if settings.curve else None
    publish_address(workdir, MonitorAddress.for_workflow(workdir, settings, keys))
    running = running_collector(workdir)
    if running is not None:
        if running.get("parent_pid") in (parent_pid, None) or is_alive(running.get("parent_pid")):
            return running.get("pid")
        # Left over from a snakemake killed a moment ago: it is about to exit by itself.
        if not _wait_until(lambda: running_collector(workdir) is None, 2.0):
            stop_collector(workdir)
    log_path = layout.collector_log(workdir)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adaptive_snakemake.metrics.collector",
                "--workdir",
                str(workdir),
                "--parent-pid",
                str(parent_pid),
                "--settings",
                json.dumps(settings.to_dict()),
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # a Ctrl-C in snakemake's terminal reaches it via onerror only
            close_fds=True,
        )
    _spawned.append(process)
    return process.pid


def stop_collector(workdir: str | os.PathLike, timeout: float = 5.0) -> bool:
    """Stop the workflow's collector (SIGTERM, then SIGKILL); True if one was running."""
    running = running_collector(workdir)
    if running is None:
        return False
    pid = running.get("pid")
    if not pid:
        return not _wait_until(lambda: running_collector(workdir) is None, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_until(lambda: running_collector(workdir) is None, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_until(lambda: running_collector(workdir) is None, timeout)
    for process in list(_spawned):
        if process.poll() is not None:
            _spawned.remove(process)
    return True


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
