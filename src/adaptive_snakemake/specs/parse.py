"""Learner specs: learners.yaml expanded into one plain, JSON-able spec per learner.

This module must stay cheap: every Snakemake process (also the one inside each
cluster job) parses learners.yaml through it. It never imports user code or
adaptive; `validation.check_specs` does that, in the main process only.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.specs.durations import parse_duration

if TYPE_CHECKING:
    import jsonschema

# jsonschema and yaml are imported where learners.yaml is read: every learner job imports
# this module for LearnerSpec alone (0.1 s less before its first point).

# Defaults for every sweep; `defaults:` in learners.yaml and each sweep override them.
BUILTIN_DEFAULTS = {
    "executor": "mpi4py",
    "tasks": 3,
    "goal": {"npoints": 200},
    "save_interval": 300,
    "log_interval": 30,
    "resources": {"runtime": 60, "mem_mb": 2000},
    "learner_kwargs": {},
    "combos": {},
    "fixed": {},
    "retries_on_error": 0,
    "point_retries": 2,
    "after": [],
    "pack": 1,
}
REQUIRED_KEYS = ("function", "learner")
_DURATION_KEYS = {"save_interval", "log_interval", "duration", "runtime"}
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")  # fullmatch: "$" would pass a final newline
# Learner names become paths (results/<name>/, state/<name>.pickle): bounded so that every
# file we write, temporary names included, stays under the usual 255-byte file name limit.
MAX_NAME_PART = 128
MAX_NAME = 512
# Names of results/ entries that are not learners.
RESERVED_SWEEPS = frozenset({"summary.csv", "plots"})
# Learners in one file, at most: counted before the grids are expanded. Above ~100,000
# Snakemake's DAG alone takes a minute; raise it with `max_learners` in config/config.yaml.
DEFAULT_MAX_LEARNERS = 100_000


@dataclass(frozen=True)
class LearnerSpec:
    name: str
    sweep: str
    params: dict  # this learner's point of the combos grid, in the order written
    function: str
    learner: str
    learner_kwargs: dict
    fixed: dict
    executor: str
    tasks: int
    goal: dict  # npoints (int), loss (float), duration (seconds); any subset
    save_interval: float
    log_interval: float
    resources: dict  # runtime (minutes), mem_mb, optional slurm_* settings
    retries_on_error: int  # attempts after the function raised (code failure), in one run
    point_retries: int  # evaluations of a point that raised, before it is a code failure
    after: list  # sweeps whose learners must all reach their goals before this one starts
    pack: int  # learners per job (specs.packs); 1: a job of its own
    fingerprint: str  # hash of what determines the learner's data (not goal, not resources)
    # Hash of the sweep's definition and goal, the same for all its learners: Snakemake
    # reruns a learner when it changes (the grid point is in the name already).
    sweep_fingerprint: str
    # executor dask: the running cluster's scheduler file (as written in learners.yaml)
    scheduler_file: str | None = None
    # A learner built in Python: its fresh learner, cloudpickled, base64 (specs.python_sweeps)
    definition: str | None = None
    import_from: str | None = None  # import_data: the adaptive data file to start from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LearnerSpec:
        return cls(**data)

    def __str__(self) -> str:
        """Compact JSON: how the learner rule hands the spec to its job (`{params.spec:q}`)."""
        return self._json

    @cached_property
    def _json(self) -> str:
        # Once per spec: Snakemake formats a job's shell command several times (dry run,
        # submission, metadata), and asdict's deep copy took 8 of 30 s of `snakemake -n` of
        # 10,000 learners. (The spec is frozen; cached_property writes past that.)
        # (Not to_dict: asdict deep-copies every value, 0.2 ms a spec; dumps only reads them.)
        shallow = {field.name: getattr(self, field.name) for field in fields(self)}
        return json.dumps(shallow, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> LearnerSpec:
        return cls.from_dict(json.loads(text))


def format_value(value) -> str:
    """Canonical text of a grid value: the same value always gives the same name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips: 0.1 -> "0.1", 1e-05 -> "1e-05"
    return str(value)


def learner_name(sweep: str, params: dict) -> str:
    """`<sweep>/<p1>~<v1>/<p2>~<v2>` (Snakemake's Paramspace convention), or `<sweep>`."""
    return "/".join([sweep, *(f"{key}~{format_value(value)}" for key, value in params.items())])


def _hash(value) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def definition_fingerprint(function, learner, learner_kwargs, params, fixed) -> str:
    return _hash([function, learner, learner_kwargs, params, fixed])


@cache
def _schema() -> dict:
    import yaml

    text = resources.files("adaptive_snakemake.specs").joinpath("schemas/learners.schema.yaml")
    return yaml.safe_load(text.read_text())


def _is_name_error(error: jsonschema.ValidationError) -> bool:
    return "propertyNames" in error.schema_path


def _describe_location(path: Path, error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if _is_name_error(error) and where == ["sweeps"]:
        where = ["sweeps", error.instance]  # the offending name is the sweep's own
    if len(where) >= 2 and where[0] == "sweeps":
        text = f"sweep {where[1]!r}"
        rest = where[2:]
    elif where and where[0] == "defaults":
        text = "defaults"
        rest = where[1:]
    else:
        text = "top level"
        rest = where
    if rest:
        text += ", key " + repr(".".join(str(part) for part in rest))
    return f"{path}: {text}"


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"unknown key {', '.join(map(repr, unknown))} (allowed: {', '.join(allowed)})"
    if _is_name_error(error):
        return (
            f"invalid name {error.instance!r}: names become file paths; use letters, digits "
            "and _.+- (parameters: letters, digits and _), not starting with '.' or '-'"
        )
    if error.validator == "pattern" and list(error.absolute_path)[-1:] == ["slurm_extra"]:
        return (
            f"{error.instance!r}: only --flag or --flag=value options, values of letters, "
            "digits and _.,:@%/+=- (the slurm plugin passes them through a shell)"
        )
    if error.validator == "oneOf" and error.absolute_path:
        if error.absolute_path[-1] in _DURATION_KEYS:
            return f'expected a positive duration (90, "90s", "30m", "2h"), got {error.instance!r}'
    return error.message


def _validate_schema(path: Path, document) -> None:
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sweeps:' key, got {document!r}")
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_describe_location(path, e)}: {_schema_message(e)}" for e in errors]
        raise ConfigError("\n".join(lines))


def _merge(defaults: dict, sweep: dict) -> dict:
    merged = copy.deepcopy(BUILTIN_DEFAULTS)
    for layer in (defaults, sweep):
        for key, value in layer.items():
            if key == "resources":
                merged["resources"] = {**merged["resources"], **value}
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def _normalized_goal(goal: dict) -> dict:
    normalized = dict(goal)
    if "duration" in normalized:
        normalized["duration"] = parse_duration(normalized["duration"])
    if "loss" in normalized:
        normalized["loss"] = float(normalized["loss"])
    return normalized


# SLURM's walltime warning as profiles/slurm sets it (see the comments there): TERM, which
# the learner saves on and the in-job snakemake survives; 60 s before the time limit.
WALLTIME_SIGNAL = "--signal=TERM@60"
_TERM_SIGNAL = re.compile(r"--signal=(TERM|SIGTERM|15)@\d+")


def _slurm_extra(value: str) -> str:
    """The user's sbatch options, with the walltime warning added if they have none."""
    signals = [token for token in value.split() if token.startswith("--signal")]
    if not signals:
        return f"{value.strip()} {WALLTIME_SIGNAL}".strip()
    for token in signals:
        if not _TERM_SIGNAL.fullmatch(token):
            raise ValueError(
                f"{token!r}: the learner saves on SIGTERM and the snakemake inside the job "
                "dies on other signals; use --signal=TERM@<seconds> (e.g. --signal=TERM@60)"
            )
    return value.strip()


def _normalized_resources(resources_: dict) -> dict:
    normalized = dict(resources_)
    if "slurm_extra" in normalized:
        normalized["slurm_extra"] = _slurm_extra(normalized["slurm_extra"])
    runtime = normalized.get("runtime")
    if isinstance(runtime, str):
        normalized["runtime"] = max(1, round(parse_duration(runtime) / 60))
    return normalized


# Numbers YAML lets through (.nan, .inf) that the schema's bounds do not catch: a NaN
# save_interval never saves, a NaN or infinite goal is never met (or met at once).
_FINITE_KEYS = ("save_interval", "log_interval", "goal.loss", "goal.duration", "resources.runtime")


def _check_finite(settings: dict, fail) -> None:
    for key in _FINITE_KEYS:
        value = settings
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, float) and not math.isfinite(value):
            fail(key, f"expected a finite number, got {value!r}")


def _run_settings(settings: dict, fail) -> dict:
    """How every learner of a sweep runs (LearnerSpec fields shared by both kinds of sweep),
    checked and normalised."""
    _check_finite(settings, fail)
    _check_executor(settings, fail)
    try:
        resources_ = _normalized_resources(settings["resources"])
    except ValueError as error:
        fail("resources.slurm_extra", str(error))
    return {
        "executor": settings["executor"],
        "tasks": settings["tasks"],
        "goal": _normalized_goal(settings["goal"]),
        "save_interval": parse_duration(settings["save_interval"]),
        "log_interval": parse_duration(settings["log_interval"]),
        "resources": resources_,
        "retries_on_error": settings["retries_on_error"],
        "point_retries": settings["point_retries"],
        "after": settings["after"],
        "pack": settings["pack"],
        "scheduler_file": settings.get("scheduler_file"),
    }


# What a sweep built in Python replaces; refused if the sweep also sets them itself.
_YAML_DEFINITION_KEYS = ("function", "learner", "learner_kwargs", "combos", "fixed")


def _python_sweep_specs(
    path: Path, sweep: str, settings: dict, own: dict, python_sweeps
) -> list[LearnerSpec]:
    def fail(key: str, message: str):
        raise ConfigError(f"{path}: sweep {sweep!r}, key {key!r}: {message}")

    both = [key for key in _YAML_DEFINITION_KEYS if key in own]
    if both:
        fail(both[0], "a sweep gives either `learners` (built in Python) or function/learner")
    if sweep in RESERVED_SWEEPS:
        fail("name", f"{sweep!r} is reserved (results/{sweep}); choose another sweep name")
    run = _run_settings(settings, fail)
    if python_sweeps is None:
        from adaptive_snakemake.specs.python_sweeps import build as python_sweeps
    entries = python_sweeps(path, sweep, settings)
    # Any learner's change reruns the sweep; unchanged learners continue from their data.
    fingerprints = [e["fingerprint"] for e in entries]
    sweep_fingerprint = _hash([settings["learners"], run["goal"], fingerprints])
    for entry in entries:
        if len(entry["name"]) > MAX_NAME or any(
            len(part) > MAX_NAME_PART for part in entry["name"].split("/")
        ):
            fail("fnames", f"the name {entry['name'][:60]!r}... is too long")
    return [
        LearnerSpec(
            name=entry["name"],
            sweep=sweep,
            params={},
            function=settings["learners"],
            learner=entry["learner"],
            learner_kwargs={},
            fixed={},
            fingerprint=entry["fingerprint"],
            sweep_fingerprint=sweep_fingerprint,
            definition=entry["definition"],
            import_from=entry["import_from"],
            **run,
        )
        for entry in entries
    ]


def _sweep_specs(path: Path, sweep: str, settings: dict) -> list[LearnerSpec]:
    def fail(key: str, message: str):
        raise ConfigError(f"{path}: sweep {sweep!r}, key {key!r}: {message}")

    for key in REQUIRED_KEYS:
        if key not in settings:
            fail(key, "missing (set it in the sweep or in defaults)")
    run = _run_settings(settings, fail)
    clash = set(settings["combos"]) & set(settings["fixed"])
    if clash:
        fail(
            "fixed",
            f"{', '.join(sorted(clash))} also in combos; a parameter is either varied or fixed",
        )
    if sweep in RESERVED_SWEEPS:
        fail("name", f"{sweep!r} is reserved (results/{sweep}); choose another sweep name")
    if len(sweep) > MAX_NAME_PART:
        fail("name", f"the sweep name is {len(sweep)} characters long; at most {MAX_NAME_PART}")
    longest_name = len(sweep)
    for key, values in settings["combos"].items():
        longest_part = 0
        for value in values:
            text = format_value(value)
            if not _SAFE_VALUE.fullmatch(text):
                fail(
                    f"combos.{key}",
                    f"value {value!r} cannot be part of a file name "
                    "(use letters, digits and _.+- only)",
                )
            part = len(key) + 1 + len(text)
            if part > MAX_NAME_PART:
                fail(
                    f"combos.{key}",
                    f"'{key}~{text[:20]}...' makes a {part}-character path part; "
                    f"at most {MAX_NAME_PART}",
                )
            longest_part = max(longest_part, part)
        longest_name += 1 + longest_part
    if longest_name > MAX_NAME:
        fail("combos", f"learner names up to {longest_name} characters long; at most {MAX_NAME}")

    sweep_fingerprint = _hash(
        [settings[k] for k in ("function", "learner", "learner_kwargs", "fixed")] + [run["goal"]]
    )
    grid_keys = list(settings["combos"])
    specs = []
    for values in itertools.product(*settings["combos"].values()):
        params = dict(zip(grid_keys, values, strict=True))
        fingerprint = definition_fingerprint(
            settings["function"],
            settings["learner"],
            settings["learner_kwargs"],
            params,
            settings["fixed"],
        )
        specs.append(
            LearnerSpec(
                name=learner_name(sweep, params),
                sweep=sweep,
                params=params,
                function=settings["function"],
                learner=settings["learner"],
                learner_kwargs=settings["learner_kwargs"],
                fixed=settings["fixed"],
                fingerprint=fingerprint,
                sweep_fingerprint=sweep_fingerprint,
                **run,
            )
        )
    return specs


# Fewest `tasks` per executor, and why.
_MIN_TASKS = {
    "ipyparallel": (2, "at least 2 tasks (1 controller + engines)"),
    "dask-mpi": (3, "at least 3 ranks (scheduler, client running the learner, workers)"),
}


def _check_executor(settings: dict, fail) -> None:
    """tasks and scheduler_file as the executor needs them. Executor dask takes the
    cluster's workers: the job itself needs one core, so tasks is 1 whatever the defaults
    say (a sweep that sets tasks itself is told)."""
    executor = settings["executor"]
    own_tasks = settings.pop("_own_tasks", 1)  # tasks as the sweep itself sets it
    if executor in _MIN_TASKS:
        least, why = _MIN_TASKS[executor]
        if settings["tasks"] < least:
            fail("tasks", f"the {executor} executor needs {why}; got {settings['tasks']}")
    if executor == "sequential" and settings["tasks"] != 1:
        fail("tasks", "the sequential executor runs one task; set tasks: 1")
    if executor != "dask":
        if "scheduler_file" in settings:
            fail(
                "scheduler_file",
                f"only for executor dask (an existing dask cluster); this sweep's executor "
                f"is {executor}",
            )
        return
    if "scheduler_file" not in settings:
        fail(
            "scheduler_file",
            "missing: executor dask connects to a running dask cluster; give the scheduler "
            "file it wrote (dask-mpi --scheduler-file PATH, or Client.write_scheduler_file)",
        )
    if own_tasks != 1:
        fail(
            "tasks",
            "executor dask evaluates points on the existing cluster's workers and the job "
            "takes one core; remove tasks from this sweep (or set 1)",
        )
    settings["tasks"] = 1
    # Cheap (one small file), so also in the processes inside jobs: a missing file is
    # refused before anything is submitted. Relative paths: from the workflow directory.
    from adaptive_snakemake.job.executors import read_scheduler_file

    try:
        read_scheduler_file(settings["scheduler_file"])
    except ValueError as error:
        fail("scheduler_file", str(error))


def parse_specs(
    document,
    path: str | Path = "learners.yaml",
    max_learners: int = DEFAULT_MAX_LEARNERS,
    python_sweeps=None,
) -> list[LearnerSpec]:
    """Specs of every learner in an already-loaded learners.yaml document.

    `python_sweeps(path, sweep, settings)`: the learners of a sweep built in Python
    (specs.python_sweeps.build, which imports user code, by default; the workflow passes
    specs.python_sweeps.from_manifest in every process but the main one).
    """
    path = Path(path)
    _validate_schema(path, document)
    defaults = document.get("defaults") or {}
    merged = {sweep: _merge(defaults, settings) for sweep, settings in document["sweeps"].items()}
    for sweep, settings in merged.items():
        settings["_own_tasks"] = document["sweeps"][sweep].get("tasks", 1)
    _check_grid_sizes(path, merged, max_learners)
    specs: list[LearnerSpec] = []
    for sweep, settings in merged.items():
        own = document["sweeps"][sweep]
        if "learners" in own:
            specs.extend(_python_sweep_specs(path, sweep, settings, own, python_sweeps))
        else:
            specs.extend(_sweep_specs(path, sweep, settings))
    _check_cluster_settings_everywhere(path, specs)
    _check_names(path, specs)
    _check_dependencies(path, merged)
    return specs


def _check_dependencies(path: Path, merged: dict) -> None:
    """`after:` names existing sweeps, and no sweep waits for itself (directly or not)."""
    for sweep, settings in merged.items():
        for other in settings["after"]:
            if other not in merged:
                raise ConfigError(
                    f"{path}: sweep {sweep!r}, key 'after': no sweep named {other!r} "
                    f"(sweeps: {', '.join(sorted(merged))})"
                )
    done: set[str] = set()
    for start in merged:
        path_ = [start]
        stack = [iter(merged[start]["after"])]
        while stack:
            other = next(stack[-1], None)
            if other is None:
                done.add(path_.pop())
                stack.pop()
                continue
            if other in path_:
                cycle = " -> ".join([*path_[path_.index(other) :], other])
                raise ConfigError(
                    f"{path}: sweep {path_[-1]!r}, key 'after': the sweeps wait for each "
                    f"other ({cycle})"
                )
            if other not in done:
                path_.append(other)
                stack.append(iter(merged[other]["after"]))


def _check_grid_sizes(path: Path, merged: dict, max_learners: int) -> None:
    """Refuse before expanding: a grid of 10^7 would exhaust memory first."""
    total = 0
    for sweep, settings in merged.items():
        size = math.prod(len(values) for values in settings.get("combos", {}).values())
        total += size
        if total > max_learners:
            raise ConfigError(
                f"{path}: sweep {sweep!r}, key 'combos': {size:,} learners, {total:,} so far in "
                f"this file; the limit is {max_learners:,} (max_learners in config/config.yaml)"
            )


def _check_names(path: Path, specs: list[LearnerSpec]) -> None:
    """Unique names, also on case-insensitive file systems, that Snakemake accepts."""
    from snakemake.io import PeriodicityDetector  # Snakemake's own rule, not a copy

    periodic = PeriodicityDetector()
    seen: dict[str, str] = {}
    for spec in specs:
        folded = spec.name.casefold()
        if folded in seen:
            if seen[folded] == spec.name:
                problem = f"the same name {spec.name!r} (repeated or equal-looking grid values)"
            else:
                problem = (
                    f"names that differ in case only, {seen[folded]!r} and {spec.name!r}: "
                    "they would share files on a case-insensitive file system"
                )
            raise ConfigError(
                f"{path}: sweep {spec.sweep!r}, key 'combos': two learners get {problem}"
            )
        seen[folded] = spec.name
        repeated = periodic.is_periodic(spec.name)
        if repeated is not None:
            raise ConfigError(
                f"{path}: sweep {spec.sweep!r}, key 'combos': the name {spec.name!r} ends in "
                f"{repeated!r} repeated; Snakemake refuses such names (periodic wildcards)"
            )


# Resources whose learners.yaml value replaces the profile's default for every learner of a
# rule (Snakemake: a rule's own resource wins over default-resources, even when unset).
_CLUSTER_SETTINGS = ("slurm_partition", "slurm_account", "slurm_extra")


def _check_cluster_settings_everywhere(path: Path, specs: list[LearnerSpec]) -> None:
    for key in _CLUSTER_SETTINGS:
        with_key = {s.sweep for s in specs if key in s.resources}
        without = sorted({s.sweep for s in specs if key not in s.resources})
        if with_key and without:
            raise ConfigError(
                f"{path}: sweep {without[0]!r}, key 'resources.{key}': missing while sweep "
                f"{sorted(with_key)[0]!r} sets it. Once a sweep sets {key}, it replaces the "
                "profile's value for all learners: put the common value in defaults.resources"
            )


def load_specs(
    path: str | Path, max_learners: int = DEFAULT_MAX_LEARNERS, python_sweeps=None
) -> list[LearnerSpec]:
    """Specs of every learner in the learners.yaml at `path`; ConfigError if it is invalid."""
    from adaptive_snakemake.specs.yamlio import load_yaml

    return parse_specs(load_yaml(path), path, max_learners, python_sweeps)
