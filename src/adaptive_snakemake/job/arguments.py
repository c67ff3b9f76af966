"""How the learner rules hand a job its learners: `--spec JSON... --checkpoint PATH...`.

A params object rather than strings or lists on purpose: Snakemake reruns a job when a
params value it can represent (str, number, list, ...) changes and skips other values
(snakemake/persistence: UNREPRESENTABLE). What should rerun a learner is its sweep's
fingerprint; neither a run setting in the spec (executor, tasks, intervals) nor whether
the learner runs alone or in a pack should.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from adaptive_snakemake.specs.parse import LearnerSpec


class JobArguments:
    def __init__(self, specs: Sequence[LearnerSpec], checkpoints: Sequence[str]):
        self.specs = tuple(specs)
        self.checkpoints = tuple(checkpoints)

    def __str__(self) -> str:
        """The command-line options, each value quoted for the shell."""
        specs = " ".join(shlex.quote(str(spec)) for spec in self.specs)
        checkpoints = " ".join(shlex.quote(path) for path in self.checkpoints)
        return f"--spec {specs} --checkpoint {checkpoints}"
