"""A learner job, as the learner rule starts it:

    [MPI launcher] python [-m mpi4py.futures] -m adaptive_snakemake.job --spec JSON
        --checkpoint state/<name>.pickle --learner-pickle results/<name>/learner.pickle
        --result results/<name>/result.json --log logs/learners/<name>.log --runtime MIN

Snakemake hands over the learner's spec and every path; the job computes none of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from adaptive_snakemake.errors import LauncherError
from adaptive_snakemake.job.executors import job_processes
from adaptive_snakemake.job.lock import LearnerLock, LockLost
from adaptive_snakemake.job.runner import run_to_goal
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.specs.parse import LearnerSpec

log = logging.getLogger("adaptive_snakemake.job")


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one learner to its goal.")
    parser.add_argument("--spec", required=True, help="the learner's spec, as JSON")
    parser.add_argument("--checkpoint", required=True, type=Path, help="state/<name>.pickle")
    parser.add_argument("--learner-pickle", required=True, type=Path, help="the final data")
    parser.add_argument("--result", required=True, type=Path, help="the result.json to write")
    parser.add_argument("--log", type=Path, help="the job's log, where metrics records go too")
    parser.add_argument(
        "--runtime", type=float, help="the job's walltime in minutes, to recognise timeouts"
    )
    return parser.parse_args(argv)


def _lock_timing() -> dict:
    """Heartbeat, stale_after and poll of the learner lock (defaults: 10 s, 60 s, 1 s), from
    ADAPTIVE_SNAKEMAKE_LOCK_*. Every job of a workflow must use the same; tests set short ones."""
    timing = {}
    for key in ("heartbeat", "stale_after", "poll"):
        value = os.environ.get(f"ADAPTIVE_SNAKEMAKE_LOCK_{key.upper()}")
        if value:
            timing[key] = float(value)
    return timing


def main(argv=None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )
    args = _arguments(argv)
    spec = LearnerSpec.from_json(args.spec)
    files = LearnerFiles(args.checkpoint, args.learner_pickle, args.result, args.log)
    try:
        # MPI world checked; dask-mpi split into scheduler, runner and workers; ipcluster
        # started; existing dask cluster joined. Stopped again on leaving, whatever happens.
        with job_processes(spec) as runs_learner:
            if not runs_learner:
                return 0  # a dask-mpi scheduler or worker rank: its cluster has closed
            with LearnerLock(files.lock, **_lock_timing()) as lock:
                try:
                    code = run_to_goal(spec, files, lock, args.runtime)
                except LockLost as lost:  # raised before the write it guards
                    log.error("%s", lost)
                    code = 1
    except LauncherError as error:  # before the learner: nothing written
        log.error("%s", error)
        return 2
    if code != 0:
        logging.shutdown()
        # Busy MPI workers or pool processes could hold up a normal exit past the walltime;
        # everything that matters is saved and the lock released.
        os._exit(code)
    return 0


if __name__ == "__main__":  # mpi4py.futures workers import this module too
    sys.exit(main())
