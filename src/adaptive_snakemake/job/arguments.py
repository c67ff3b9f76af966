"""How the learner rules hand a job its learners: `--spec JSON... --checkpoint PATH...`,
or for a pack `--specs-file PATH --pack-results PATH --checkpoint PATH...`.

A pack's specs go through a file (written by the main snakemake process, `write_specs`):
Snakemake keeps a job's shell command in the metadata of every output, and a command with
50 specs inline made that 87 KB per learner.

A params object rather than strings or lists on purpose: Snakemake reruns a job when a
params value it can represent (str, number, list, ...) changes and skips other values
(snakemake/persistence: UNREPRESENTABLE). What should rerun a learner is its sweep's
fingerprint; neither a run setting in the spec (executor, tasks, intervals) nor whether
the learner runs alone or in a pack should.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from adaptive_snakemake.fileio import atomic_write_text
from adaptive_snakemake.specs.parse import LearnerSpec


class JobArguments:
    def __init__(
        self,
        specs: Sequence[LearnerSpec],
        checkpoints: Sequence[str],
        specs_file: str | None = None,
        pack_results: str | None = None,
    ):
        self.specs = tuple(specs)
        self.checkpoints = tuple(checkpoints)
        self.specs_file = specs_file
        # A pack rule's output, named here because the shell command is the same for both
        # kinds of rule (common.smk: JOB_SHELL).
        self.pack_results = pack_results

    def __str__(self) -> str:
        """The command-line options, each value quoted for the shell."""
        if self.specs_file is not None:
            specs = f"--specs-file {shlex.quote(self.specs_file)}"
            if self.pack_results is not None:
                specs += f" --pack-results {shlex.quote(self.pack_results)}"
        else:
            specs = "--spec " + " ".join(shlex.quote(str(spec)) for spec in self.specs)
        checkpoints = " ".join(shlex.quote(path) for path in self.checkpoints)
        return f"{specs} --checkpoint {checkpoints}"


class ShellText:
    """A constant piece of a job's command (`python`) as a params value that Snakemake
    formats as its text but never compares between runs (not a builtin type), like the
    functions it replaces: a constant costs nothing per job, a function is called and
    inspected for every one of 10,000 jobs."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def _specs_text(specs: Sequence[LearnerSpec]) -> str:
    # Each spec's own (cached) JSON: to_dict deep-copies, 25 s for 100,000 specs.
    return "[" + ",".join(str(spec) for spec in specs) + "]\n"


def write_specs(path: str | Path, specs: Sequence[LearnerSpec]) -> None:
    """The specs file of a pack, rewritten (atomically) only when its content changes."""
    text = _specs_text(specs)
    try:
        if Path(path).read_text() == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def read_specs(path: str | Path) -> list[LearnerSpec]:
    return [LearnerSpec.from_dict(data) for data in json.loads(Path(path).read_text())]
