"""Sweeps whose learners are built in Python (`learners: module:attribute`).

adaptive-scheduler users build `learners` (and `fnames`) in a Python file; such a sweep
takes them as they are. The main snakemake process imports the user's module once,
pickles each learner (cloudpickle, as adaptive-scheduler does to send learners to jobs)
and writes a manifest (.adaptive-snakemake/python-sweeps/<sweep>.json). A job gets its
own pickled learner on its command line; every other snakemake process of the run (the
one inside each cluster job) reads the manifest instead of building 10,000 learners.

Names: `<sweep>/<fname>` when `fnames` are given, the fname's path parts kept, a final
`.pickle`/`.pkl` dropped and every character outside letters, digits and `_.+-` turned
into `_`, runs of `_` made one and trimmed at the ends (adaptive-scheduler's
`f"data/{combo}"`, e.g. `data/{'pow': 0, 'a': 0.1}`, becomes `<sweep>/data/pow_0_a_0.1`);
otherwise `<sweep>/i~<index>`, which renames learners if the list is reordered.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import warnings
from pathlib import Path

from adaptive_snakemake import layout
from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.fileio import atomic_write_json, read_json_or_none

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")
_EXTENSIONS = (".pickle", ".pkl")


def name_from_fname(sweep: str, fname) -> str:
    """The learner name a file name gives (the documented rule above)."""
    text = os.fspath(fname)
    for extension in _EXTENSIONS:
        if text.endswith(extension):
            text = text[: -len(extension)]
    parts = []
    for part in re.split(r"[/\\\\]+", text):
        if part in ("", ".", ".."):
            continue
        # {'pow': 0, 'a': 0.1} -> pow_0_a_0.1: unsafe runs become one "_", none at the ends
        part = re.sub("_+", "_", _UNSAFE.sub("_", part)).strip("_").lstrip(".-") or "_"
        parts.append(part)
    return "/".join([sweep, *parts])


def build(path: Path, sweep: str, settings: dict) -> list[dict]:
    """Import the user's learners (and fnames), pickle each; write the sweep's manifest.

    Main snakemake process only: imports user code. Returns one entry per learner:
    name, learner (class name), definition (base64 pickle), fingerprint, import_from.
    """
    import cloudpickle
    from adaptive.learner.base_learner import BaseLearner

    from adaptive_snakemake.specs.validation import SweepProblem, import_user_object

    def fail(key: str, message: str):
        raise ConfigError(f"{path}: sweep {sweep!r}, key {key!r}: {message}")

    def load(key: str):
        try:
            value = import_user_object(settings[key], key)
            return list(value() if callable(value) else value)
        except SweepProblem as problem:
            fail(problem.key, str(problem))
        except TypeError as error:
            fail(key, f"{settings[key]!r} is not a list (or a function returning one): {error}")
        except Exception as error:
            fail(key, f"calling {settings[key]!r} raised {type(error).__name__}: {error}")

    learners = load("learners")
    if not learners:
        fail("learners", f"{settings['learners']!r} gives no learners")
    for index, learner in enumerate(learners):
        if not isinstance(learner, BaseLearner):
            fail("learners", f"item {index} is a {type(learner).__name__}, not an adaptive learner")
    fnames = load("fnames") if "fnames" in settings else None
    if fnames is not None and len(fnames) != len(learners):
        fail("fnames", f"{len(fnames)} fnames for {len(learners)} learners")
    if settings.get("import_data") and fnames is None:
        fail("import_data", "needs fnames: the files to import the data from")
    if fnames is None:
        names = [f"{sweep}/i~{index}" for index in range(len(learners))]
        warnings.warn(
            f"sweep {sweep!r}: learners named by their index in {settings['learners']!r}; "
            "reordering the list renames them (give fnames for stable names)",
            stacklevel=1,
        )
    else:
        names = [name_from_fname(sweep, fname) for fname in fnames]
    entries = []
    for index, (name, learner) in enumerate(zip(names, learners, strict=True)):
        try:
            blob = cloudpickle.dumps(learner)
        except Exception as error:
            fail("learners", f"learner {index} ({name}) cannot be pickled: {error!r}")
        entries.append(
            {
                "name": name,
                "learner": type(learner).__name__,
                "definition": base64.b64encode(blob).decode("ascii"),
                "fingerprint": hashlib.sha256(blob).hexdigest()[:16],
                "import_from": os.fspath(fnames[index]) if settings.get("import_data") else None,
            }
        )
    layout.ensure_private_dir(layout.private_dir())
    atomic_write_json(layout.python_sweep_manifest(sweep), {"learners": entries})
    return entries


def from_manifest(path: Path, sweep: str, settings: dict) -> list[dict]:
    """The entries the main process wrote (every other snakemake process of the run)."""
    manifest = layout.python_sweep_manifest(sweep)
    data = read_json_or_none(manifest)
    if not isinstance(data, dict) or not isinstance(data.get("learners"), list):
        raise ConfigError(
            f"{path}: sweep {sweep!r}, key 'learners': {manifest} is missing or unreadable; "
            "it is written by the main snakemake process when the run starts"
        )
    return data["learners"]
