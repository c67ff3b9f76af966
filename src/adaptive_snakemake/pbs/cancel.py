"""cluster-generic cancel command: ``qdel`` the given job ids, all in one call.

The plugin calls it (without a shell) with up to ``cluster-generic-cancel-nargs`` ids and
kills it after 2 seconds. qdel of many jobs can take longer than that, so qdel runs in its
own session, where that kill cannot reach it; we wait for it briefly only to report errors.
Output goes to ``<state>/cancel.log``; the ids to ``<state>/cancelled.tsv``, so that the
sidecar, which cancels whatever the plugin missed when snakemake stops it, skips them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from adaptive_snakemake.pbs.config import SidecarVars, state_dir_for
from adaptive_snakemake.pbs.files import StateDir

WAIT_SECONDS = 1.5


def cancel(
    job_ids: list[str], state: StateDir | None = None, wait: float = WAIT_SECONDS
) -> int | None:
    """Start ``qdel ID...``; its exit code if it ended within ``wait`` seconds, else None."""
    state = (state or state_dir_for(SidecarVars.from_env())).ensure()
    state.mark_cancelled(job_ids)
    with open(state.cancel_log, "ab") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} qdel {' '.join(job_ids)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            ["qdel", *job_ids],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        return proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        return None


def main(argv: list[str] | None = None) -> int:
    job_ids = [a for a in (sys.argv[1:] if argv is None else argv) if a.strip()]
    if not job_ids:
        return 0
    try:
        rc = cancel(job_ids)
    except OSError as e:
        print(f"adaptive-snakemake pbs cancel: cannot run qdel: {e}", file=sys.stderr)
        return 1
    if rc not in (0, None):
        # Typically "job has finished" for some ids: nothing left to cancel. Not an error.
        print(
            f"adaptive-snakemake pbs cancel: qdel exited with {rc}; see cancel.log", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    # Ctrl-C reaches every process in snakemake's foreground group; see proc.py.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main())
