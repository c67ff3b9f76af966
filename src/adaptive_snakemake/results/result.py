"""results/<name>/result.json: what a finished learner reached, one type for writer and readers;
and a pack's results file (layout.PACK_RESULTS): a list of them."""

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
            return cls._from_dict(json.loads(Path(path).read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a learner result ({error!r})") from None

    @classmethod
    def _from_dict(cls, data: dict) -> Result:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def write_pack_results(path: str | os.PathLike, results: list[Result]) -> None:
    atomic_write_json(path, [asdict(result) for result in results])


def read_results(path: str | os.PathLike) -> list[Result]:
    """The results in a result.json (one) or a pack's results file (its learners', in order);
    ValueError naming the file if it is neither."""
    try:
        data = json.loads(Path(path).read_text())
        if isinstance(data, list):
            return [Result._from_dict(item) for item in data]
        return [Result._from_dict(data)]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} holds no learner results ({error!r})") from None
