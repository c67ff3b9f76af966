"""A learner job, as the learner rules start it:

    [MPI launcher] python [-m adaptive_snakemake.job.mpi_pool] -m adaptive_snakemake.job \
        --spec JSON...
        (or --specs-file state/.packs/<pack>.specs.json --pack-results results/.packs/<pack>.json)
        --checkpoint state/<name>.pickle... --learner-pickle results/<name>/learner.pickle...
        --result results/<name>/result.json... --log logs/learners/<name>.log... --runtime MIN

One value per learner for each option: one learner, or the learners of a pack, which
share the job's workers. Snakemake hands over the specs and every path; the job computes
none of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from adaptive_snakemake.lazy_imports import defer

defer()  # before adaptive is imported: ~1.1 s less before the first point

from adaptive_snakemake.errors import LauncherError  # noqa: E402
from adaptive_snakemake.job.arguments import read_specs  # noqa: E402
from adaptive_snakemake.job.executors import job_processes  # noqa: E402
from adaptive_snakemake.job.lock import LearnerLock  # noqa: E402
from adaptive_snakemake.job.runner import run_learners  # noqa: E402
from adaptive_snakemake.layout import LearnerFiles  # noqa: E402
from adaptive_snakemake.results.result import Result, write_pack_results  # noqa: E402
from adaptive_snakemake.specs.parse import LearnerSpec  # noqa: E402

log = logging.getLogger("adaptive_snakemake.job")


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a job's learners to their goals.")
    each = {"nargs": "+", "required": True}
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", nargs="+", help="each learner's spec, as JSON")
    given.add_argument("--specs-file", type=Path, help="a pack's specs: a JSON list")
    parser.add_argument(
        "--pack-results", type=Path, help="a pack's results file, written when all are done"
    )
    parser.add_argument("--checkpoint", **each, type=Path, help="state/<name>.pickle")
    parser.add_argument("--learner-pickle", **each, type=Path, help="the final data")
    parser.add_argument("--result", **each, type=Path, help="the result.json to write")
    parser.add_argument(
        "--log", nargs="+", type=Path, help="each learner's log, where metrics records go too"
    )
    parser.add_argument(
        "--runtime", type=float, help="the job's walltime in minutes, to recognise timeouts"
    )
    args = parser.parse_args(argv)
    if args.specs_file is not None:
        args.spec = [str(spec) for spec in read_specs(args.specs_file)]
    if args.log is None:  # metrics records then go to the collector only
        args.log = [None] * len(args.spec)
    counts = {len(getattr(args, key)) for key in ("spec", "checkpoint", "learner_pickle")}
    counts |= {len(args.result), len(args.log)}
    if len(counts) != 1:
        parser.error(
            "give each of --spec, --checkpoint, --learner-pickle, --result and "
            "--log once per learner (--specs-file: one spec per learner)"
        )
    return args


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
    specs = [LearnerSpec.from_json(text) for text in args.spec]
    files = [
        LearnerFiles(*paths)
        for paths in zip(args.checkpoint, args.learner_pickle, args.result, args.log, strict=True)
    ]
    try:
        # MPI world checked; dask-mpi split into scheduler, runner and workers; ipcluster
        # started; existing dask cluster joined. Stopped again on leaving, whatever happens.
        # A pack's learners share one sweep's executor settings: the first one's.
        with job_processes(specs[0]) as runs_learner:
            if not runs_learner:
                return 0  # a dask-mpi scheduler or worker rank: its cluster has closed
            with contextlib.ExitStack() as locks:
                members = [
                    (spec, each, locks.enter_context(LearnerLock(each.lock, **_lock_timing())))
                    for spec, each in zip(specs, files, strict=True)
                ]
                # A pack job writes its own output to the pack's log, not the learners'.
                own_logs = specs[0].pack > 1
                code = run_learners(members, args.runtime, own_logs=own_logs)
                if code == 0 and args.pack_results is not None:
                    # Every result.json was just written, under the learners' locks.
                    results = [Result.read(each.result) for each in files]
                    write_pack_results(args.pack_results, results)
    except LauncherError as error:  # before the learner: nothing written
        log.error("%s", error)
        return 2
    if code != 0:
        logging.shutdown()
        # Busy MPI workers or pool processes could hold up a normal exit past the walltime;
        # everything that matters is saved and the lock released.
        os._exit(code)
    return 0


if __name__ == "__main__":  # (job/mpi_pool.py runs it as __main__ on rank 0)
    sys.exit(main())
