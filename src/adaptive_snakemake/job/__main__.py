"""A learner job: `python [-m mpi4py.futures] -m adaptive_snakemake.job --name NAME`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from adaptive_snakemake import layout as paths
from adaptive_snakemake.errors import ConfigError, LauncherError
from adaptive_snakemake.job.executors import check_mpi_world
from adaptive_snakemake.job.lock import LearnerLock
from adaptive_snakemake.job.runner import run_to_goal
from adaptive_snakemake.specs.parse import find_spec, load_specs

log = logging.getLogger("adaptive_snakemake.job")
LEARNERS_ENV = "ADAPTIVE_SNAKEMAKE_LEARNERS"


def _arguments(argv):
    parser = argparse.ArgumentParser(description="Run one learner of learners.yaml to its goal.")
    parser.add_argument(
        "--learners",
        default=os.environ.get(LEARNERS_ENV),
        help=f"the learners.yaml file (default: ${LEARNERS_ENV}, set by the workflow)",
    )
    parser.add_argument("--name", required=True, help="the learner's name")
    parser.add_argument(
        "--sweep-fingerprint",
        help="refuse to run if the sweep's definition or goal changed since snakemake planned",
    )
    parser.add_argument("--root", default=".", help="the workflow directory")
    args = parser.parse_args(argv)
    if not args.learners:
        parser.error(f"give --learners or set {LEARNERS_ENV}")
    return args


def _reporter_factory(spec, root: Path):
    from adaptive_snakemake.metrics.reporter import open_reporter

    def open_for(attempt: int):
        log_file = paths.learner_log(spec.name, root)
        return open_reporter(
            name=spec.name,
            attempt=attempt,
            log_file=log_file,
            workdir=root,
            log_interval=spec.log_interval,
        )

    return open_for


def main(argv=None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )
    args = _arguments(argv)
    root = Path(args.root)
    try:
        spec = find_spec(load_specs(args.learners), args.name)
        if args.sweep_fingerprint and spec.sweep_fingerprint != args.sweep_fingerprint:
            raise ConfigError(
                f"{args.learners}: learner {args.name!r} changed after snakemake planned this "
                "job; rerun snakemake so it plans with the current file"
            )
        if spec.executor == "mpi4py":
            check_mpi_world(spec.tasks)
    except (ConfigError, LauncherError) as error:
        log.error("%s", error)
        return 2
    lock = LearnerLock(paths.learner_lock(paths.checkpoint(spec.name, root)))
    with lock:
        code = run_to_goal(spec, root, _reporter_factory(spec, root), lock)
    if code != 0:
        logging.shutdown()
        # Busy MPI workers or pool processes could hold up a normal exit past the walltime;
        # everything that matters is saved and the lock released.
        os._exit(code)
    return 0


if __name__ == "__main__":  # mpi4py.futures workers import this module too
    sys.exit(main())
