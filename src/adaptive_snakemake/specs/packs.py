"""Which learners of a sweep with `pack: N` share a job: stable packs of at most N.

A pack is one Snakemake job whose outputs are its members' files, so a pack whose
membership changed would run again. Membership is therefore remembered
(`state/packs/<sweep>.json`) instead of recomputed from the sweep's current order: a
learner keeps its pack for as long as the sweep exists. New learners fill the last pack
while none of its members has finished, then open new packs; learners that left the sweep
leave their pack (a pack is never renumbered). Changing N starts the packs afresh (finished
learners then rewrite their results from their checkpoints, computing nothing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptive_snakemake import layout
from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.fileio import atomic_write_json, read_json_or_none


@dataclass(frozen=True)
class Pack:
    sweep: str
    index: int
    members: tuple[str, ...]  # learner names, in the sweep's order

    @property
    def id(self) -> str:
        """`<sweep>.<index>`: the job's name in logs and in Snakemake's rule name."""
        return f"{self.sweep}.{self.index}"


def assign(
    names: Sequence[str],
    size: int,
    previous: list[list[str]] | None,
    finished: Callable[[str], bool],
) -> list[list[str]]:
    """Packs of at most `size` names (index = pack number; a pack may become empty).

    `previous`: the packs remembered from the last parse, `finished(name)`: whether a
    learner has its results (a new learner joins no pack of finished learners).
    """
    present = set(names)
    packs = [[name for name in pack if name in present] for pack in previous or []]
    placed = {name for pack in packs for name in pack}
    new = [name for name in names if name not in placed]
    if new and packs and 0 < len(packs[-1]) < size and not any(map(finished, packs[-1])):
        room = size - len(packs[-1])
        packs[-1].extend(new[:room])
        new = new[room:]
    packs.extend(new[start : start + size] for start in range(0, len(new), size))
    return packs


def _remembered(path: Path, size: int) -> list[list[str]] | None:
    saved = read_json_or_none(path)
    if not isinstance(saved, dict) or saved.get("pack") != size:
        return None  # none yet, unreadable, or another N: start afresh
    packs = saved.get("packs")
    if not isinstance(packs, list) or not all(
        isinstance(pack, list) and all(isinstance(name, str) for name in pack) for pack in packs
    ):
        return None
    return packs


def sweep_packs(
    sweep: str,
    names: Sequence[str],
    size: int,
    workdir: str | os.PathLike = ".",
    remember: bool = True,
) -> list[Pack]:
    """The packs of one sweep, as remembered and extended by its new learners.

    `remember`: write the packs back when they changed (the main snakemake process does;
    the snakemake inside a cluster job only reads what the main process wrote).
    """
    path = layout.packs_file(sweep, workdir)
    previous = _remembered(path, size)

    def finished(name: str) -> bool:
        return layout.result_json(name, workdir).exists()

    packs = assign(names, size, previous, finished)
    if remember and packs != previous:
        try:
            atomic_write_json(path, {"sweep": sweep, "pack": size, "packs": packs})
        except OSError as error:
            raise ConfigError(
                f"cannot remember the packs of sweep {sweep!r} in {path}: {error}"
            ) from None
    order = {name: position for position, name in enumerate(names)}
    return [
        Pack(sweep, index, tuple(sorted(members, key=order.__getitem__)))
        for index, members in enumerate(packs)
        if members
    ]
