"""The checkpoint format, without adaptive: gzip of the cloudpickled ``learner._get_data()``.

Reading and writing the bytes lives here so that what only needs a learner's data (the
sweep's picture of plain Learner1D and SequenceLearner learners, whose data is a dict of
points) can read it without importing adaptive (~0.5 s); checkpoint.py puts the data into
learners.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from typing import Any

import cloudpickle

from adaptive_snakemake.fileio import atomic_write_bytes


class CheckpointError(Exception):
    """A checkpoint exists but cannot be restored (truncated, corrupt, or of another learner)."""


def write_data(data: Any, path: str | os.PathLike) -> None:
    """Byte for byte what ``adaptive.utils.save`` writes, except the gzip timestamp (0, so the
    same data gives the same file); atomically, raising if it fails."""
    blob = cloudpickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(path, gzip.compress(blob, mtime=0))


def read_data(path: str | os.PathLike) -> Any:
    """The data saved at ``path``; FileNotFoundError if there is none, CheckpointError if
    it cannot be read."""
    blob = Path(path).read_bytes()
    try:
        # Decompress the whole file first: that checks gzip's CRC and length, which
        # adaptive's streaming load never reaches (unpickling stops at the pickle's end).
        return cloudpickle.loads(gzip.decompress(blob))
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {e}). If it is truncated "
            f"or corrupt, move it aside (mv {path} {path}.broken) and rerun: the learner "
            "then starts over from no points."
        ) from e
