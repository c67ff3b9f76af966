"""Learners and their points back in Python: `load_learner`, `load_learners`, `load_results`.

Each learner's files describe it (result.json, or the checkpoint's bookkeeping for an
unfinished learner), so loading needs neither learners.yaml nor the user's function:
the learners come back for reading (plot, to_dataframe), not for sampling.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from adaptive_snakemake import layout
from adaptive_snakemake.job.bookkeeping import read_meta
from adaptive_snakemake.job.checkpoint import restore_learner
from adaptive_snakemake.job.learners import learner_class as learner_class_of
from adaptive_snakemake.job.learners import resolved_kwargs, unpickle_learner
from adaptive_snakemake.results.result import Result


def _not_sampling(*args, **kwargs):
    raise RuntimeError("this learner was loaded for reading and cannot sample")


def read_learner(
    learner_class: str,
    learner_kwargs: dict,
    path: str | os.PathLike,
    definition=None,
    workdir: str | os.PathLike = ".",
):
    """The learner saved at `path` (adaptive's format), built without the user's function
    (a learner built in Python comes back from its pickled `definition`, function and all,
    which needs the user's module importable from the workflow directory `workdir`)."""
    if definition is not None:
        learner = unpickle_learner(definition, workdir)
    else:
        cls = learner_class_of(learner_class)
        learner = cls(_not_sampling, **resolved_kwargs(learner_class, learner_kwargs))
    restore_learner(learner, Path(path))
    return learner


def load_learner(name: str, workdir: str | os.PathLike = "."):
    """Learner `name` of the workflow in `workdir`, with its data: the final one if it has
    reached its goal, else its latest checkpoint. KeyError if it has neither."""
    files = layout.LearnerFiles.of(name, workdir)
    if files.result.exists() and files.learner_pickle.exists():
        result = Result.read(files.result)
        return read_learner(
            result.learner, result.learner_kwargs, files.learner_pickle, result.definition, workdir
        )
    meta = read_meta(files.meta)
    if files.checkpoint.exists() and meta is not None and isinstance(meta.get("spec"), dict):
        spec = meta["spec"]
        return read_learner(
            spec["learner"],
            spec["learner_kwargs"],
            files.checkpoint,
            spec.get("definition"),
            workdir,
        )
    raise KeyError(f"learner {name!r} has no result and no checkpoint in {Path(workdir)}")


def learner_names(workdir: str | os.PathLike = ".", sweep: str | None = None) -> list[str]:
    """Names of the learners with a result or a checkpoint, sorted."""
    workdir = Path(workdir)
    names = {
        path.parent.relative_to(layout.results_dir(workdir)).as_posix()
        for path in layout.results_dir(workdir).glob("**/result.json")
    }
    state = layout.checkpoint("", workdir).parent
    for path in state.glob("**/*.pickle"):
        names.add(path.relative_to(state).with_suffix("").as_posix())
    if sweep is not None:
        names = {n for n in names if n == sweep or n.startswith(f"{sweep}/")}
    return sorted(names)


def load_learners(sweep: str | None = None, workdir: str | os.PathLike = ".") -> dict:
    """{name: learner} for every learner with data (of one sweep, if given)."""
    return {name: load_learner(name, workdir) for name in learner_names(workdir, sweep)}


def _value(text: str):
    """A grid value back from its text in a name (specs.parse.format_value)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def _params(name: str) -> dict:
    """A learner's grid point from its name (`sweep/p1~v1/p2~v2`)."""
    parts = [part.split("~", 1) for part in name.split("/")[1:] if "~" in part]
    return {key: _value(text) for key, text in parts}


def load_results(sweep: str | None = None, workdir: str | os.PathLike = ".") -> pd.DataFrame:
    """Every sampled point of every learner (of one sweep), one row each: name, sweep, the
    grid parameters, then the learner's own columns (adaptive's `to_dataframe`)."""
    frames = []
    for name, learner in load_learners(sweep, workdir).items():
        frame = learner.to_dataframe(with_default_function_args=False)
        frame.insert(0, "name", name)
        frame.insert(1, "sweep", name.split("/")[0])
        for position, (key, value) in enumerate(_params(name).items(), start=2):
            frame.insert(position, key, value)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["name", "sweep"])
    return pd.concat(frames, ignore_index=True)
