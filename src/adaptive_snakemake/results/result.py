"""results/<name>/result.json: what a finished learner reached, one type for writer and readers."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_json


@dataclass(frozen=True)
class Result:
    name: str
    sweep: str
    learner: str  # adaptive class name
    learner_kwargs: dict  # as in learners.yaml: with `learner`, enough to rebuild it for reading
    params: dict  # the learner's grid point
    npoints: int
    loss: float | None  # None when the learner's loss is not finite
    elapsed: float  # seconds computed, over all attempts
    goal: dict
    reached: str  # which goal was met: npoints | loss | duration | done | exhausted
    attempts: int
    restored_npoints: int  # points present when the last attempt began
    fingerprint: str  # the learner's definition (specs.parse.definition_fingerprint)
    definition: str | None = None  # a learner built in Python, pickled (specs.python_sweeps)

    def write(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Result:
        """The result at `path`; ValueError naming the file if it is not one."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a learner result ({error!r})") from None
