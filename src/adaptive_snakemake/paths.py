"""Where each learner's files live (the contract in DESIGN.md), relative to the workflow dir."""

from pathlib import Path

RESULTS = Path("results")
STATE = Path("state")
LOGS = Path("logs")


def learner_pickle(name: str, root: Path = Path(".")) -> Path:
    return root / RESULTS / name / "learner.pickle"


def result_json(name: str, root: Path = Path(".")) -> Path:
    return root / RESULTS / name / "result.json"


def checkpoint(name: str, root: Path = Path(".")) -> Path:
    """Not a Snakemake output: Snakemake deletes outputs of failed jobs, this must survive."""
    return root / STATE / f"{name}.pickle"


def checkpoint_meta(name: str, root: Path = Path(".")) -> Path:
    """Bookkeeping beside the checkpoint: definition fingerprint, cumulative elapsed, attempts."""
    return root / STATE / f"{name}.json"


def lock(name: str, root: Path = Path(".")) -> Path:
    return root / STATE / f"{name}.lock"


def learner_log(name: str, root: Path = Path(".")) -> Path:
    return root / LOGS / "learners" / f"{name}.log"
