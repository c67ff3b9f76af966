"""Where every file of a workflow lives (the contracts in DESIGN.md), in one place.

The workflow builds its rules from these patterns (workflow/rules/common.smk) and passes
the concrete paths to each job; a job derives no path of its own except the checkpoint's
siblings (`checkpoint_meta`, `learner_lock`). Paths are relative to the workflow directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Snakemake patterns ({name}: a learner's name, {sweep}: a sweep's name).
LEARNER_PICKLE = "results/{name}/learner.pickle"
RESULT_JSON = "results/{name}/result.json"
LEARNER_LOG = "logs/learners/{name}.log"
# Not a Snakemake output: Snakemake deletes the outputs of failed jobs, this must survive.
CHECKPOINT = "state/{name}.pickle"
# The learners of each pack of a sweep with `pack: N` (specs/packs.py); hidden: learner
# names never start with ".", so no checkpoint or bookkeeping file can clash with it.
PACKS_FILE = "state/.packs/{sweep}.json"
# The specs of a pack's learners, for its job (job/arguments.py), written by the main process.
PACK_SPECS = "state/.packs/{pack}.specs.json"
# Created by a SLURM learner job's batch script when it exits (slurm/job_ends.py).
JOB_ENDS_DIR = "state/.job-ends"
# The results of a pack's learners together (a JSON list of result.json contents), written by
# its job after theirs: what the summary and the sweep's done-marker read for a packed sweep.
# One input per pack instead of one per learner: Snakemake finds a pack's job for a file by
# matching the file against the pack's outputs one by one, which at 100,000 learners in
# packs of 100 was most of `snakemake -n`. Hidden, like the done-markers.
PACK_RESULTS = "results/.packs/{pack}.json"
# The job of a pack: its own messages; each learner's go to its LEARNER_LOG as well.
PACK_LOG = "logs/packs/{pack}.log"
SUMMARY = "results/summary.csv"
SUMMARY_LOG = "logs/summary.log"
SWEEP_PLOT = "results/plots/{sweep}.png"
# Written when every learner of a sweep has reached its goal; sweeps with `after:` wait for it.
# A hidden name: learner names never start with ".".
SWEEP_DONE = "results/.sweeps/{sweep}.done"
SWEEP_DONE_LOG = "logs/sweeps/{sweep}.done.log"
SWEEP_PLOT_LOG = "logs/plots/{sweep}.log"
# The pieces of `snakemake --report` (workflow/rules/report.smk): per sweep, and for the run.
SWEEP_REPORT = "results/report/sweeps/{sweep}.html"
SWEEP_REPORT_PICTURE = "results/report/sweeps/{sweep}.png"
SWEEP_REPORT_LOG = "logs/report/{sweep}.log"
RUN_REPORT_SUMMARY = "results/report/summary.html"
RUN_REPORT_TIMELINE = "results/report/timeline.png"
RUN_REPORT_CONVERGENCE = "results/report/convergence.png"
RUN_REPORT_LOG = "logs/report/run.log"

RESULTS_DIR = "results"
LEARNER_LOGS_DIR = "logs/learners"
# Private to the user (mode 0700): monitor keys, pidfile, address, latest state, plan.
PRIVATE_DIR = ".adaptive-snakemake"


def _in(workdir: str | os.PathLike, pattern: str, **wildcards) -> Path:
    return Path(workdir) / pattern.format(**wildcards)


def learner_pickle(name: str, workdir: str | os.PathLike = ".") -> Path:
    return _in(workdir, LEARNER_PICKLE, name=name)


def result_json(name: str, workdir: str | os.PathLike = ".") -> Path:
    return _in(workdir, RESULT_JSON, name=name)


def learner_log(name: str, workdir: str | os.PathLike = ".") -> Path:
    return _in(workdir, LEARNER_LOG, name=name)


def checkpoint(name: str, workdir: str | os.PathLike = ".") -> Path:
    return _in(workdir, CHECKPOINT, name=name)


def checkpoint_meta(checkpoint_path: str | os.PathLike) -> Path:
    """Bookkeeping of the checkpoint beside it: fingerprint, cumulative elapsed, attempts."""
    return Path(checkpoint_path).with_suffix(".json")


def failure_record(checkpoint_path: str | os.PathLike) -> Path:
    """The learner's last code failure (its function raised), beside its checkpoint."""
    return Path(checkpoint_path).with_suffix(".failed.json")


def learner_lock(checkpoint_path: str | os.PathLike) -> Path:
    """The lock that keeps a second job off the learner of this checkpoint."""
    return Path(checkpoint_path).with_suffix(".lock")


def packs_file(sweep: str, workdir: str | os.PathLike = ".") -> Path:
    return _in(workdir, PACKS_FILE, sweep=sweep)


def results_dir(workdir: str | os.PathLike = ".") -> Path:
    return Path(workdir) / RESULTS_DIR


def learner_logs_dir(workdir: str | os.PathLike = ".") -> Path:
    return Path(workdir) / LEARNER_LOGS_DIR


def metrics_file(workdir: str | os.PathLike = ".") -> Path:
    """Every valid metrics record received, one JSON object per line (pandas reads it)."""
    return Path(workdir) / "logs" / "metrics.jsonl"


def collector_log(workdir: str | os.PathLike = ".") -> Path:
    return Path(workdir) / "logs" / "collector.log"


def private_dir(workdir: str | os.PathLike = ".") -> Path:
    return Path(workdir) / PRIVATE_DIR


def keys_dir(workdir: str | os.PathLike = ".") -> Path:
    return private_dir(workdir) / "keys"


def monitor_file(workdir: str | os.PathLike = ".") -> Path:
    """Tells jobs where the collector listens and which keys to use (no secrets inside)."""
    return private_dir(workdir) / "monitor.json"


def status_file(workdir: str | os.PathLike = ".") -> Path:
    """Latest state per learner, rewritten atomically by the collector every second."""
    return private_dir(workdir) / "status.json"


def pid_file(workdir: str | os.PathLike = ".") -> Path:
    """Locked by the running collector for its lifetime: one collector per workflow."""
    return private_dir(workdir) / "collector.pid"


def python_sweep_manifest(sweep: str, workdir: str | os.PathLike = ".") -> Path:
    """The learners of a sweep built in Python, pickled by the main snakemake process."""
    return private_dir(workdir) / "python-sweeps" / f"{sweep}.json"


def plan_file(workdir: str | os.PathLike = ".") -> Path:
    """The learners the last snakemake run planned, and its monitor settings (for status)."""
    return private_dir(workdir) / "plan.json"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it readable by the user only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class LearnerFiles:
    """Where one learner's job reads and writes: the learner rule passes these paths."""

    checkpoint: Path
    learner_pickle: Path
    result: Path
    log: Path | None = None  # the job's log; metrics records go there too

    @property
    def meta(self) -> Path:
        return checkpoint_meta(self.checkpoint)

    @property
    def lock(self) -> Path:
        return learner_lock(self.checkpoint)

    @property
    def failure(self) -> Path:
        return failure_record(self.checkpoint)

    @classmethod
    def of(cls, name: str, workdir: str | os.PathLike = ".") -> LearnerFiles:
        """The files of learner `name` in `workdir`, by the patterns above."""
        return cls(
            checkpoint=checkpoint(name, workdir),
            learner_pickle=learner_pickle(name, workdir),
            result=result_json(name, workdir),
            log=learner_log(name, workdir),
        )
