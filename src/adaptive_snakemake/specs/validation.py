"""Semantic checks of learner specs that need user code and adaptive.

Run once, in the main Snakemake process, before any job starts: every problem
becomes a ConfigError naming the file, the sweep and the key.
"""

from __future__ import annotations

import inspect
import io
import math
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.job.learners import (
    LEARNER_KINDS,
    build_learner,
    import_function,
    learner_class,
    learner_kind,
    resolve_loss,
)
from adaptive_snakemake.specs.parse import LearnerSpec


class SweepProblem(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def import_user_object(reference: str, key: str):
    """The user's object named by "module:attribute"; SweepProblem for `key` if it fails."""
    module_name = reference.partition(":")[0]
    try:
        # What the module prints while being imported (argparse's usage on an exit, say)
        # would be mistaken for snakemake's own output.
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            return import_function(reference)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise SweepProblem(
                key,
                f"cannot import {reference!r}: no module named {error.name!r} "
                f"(is it importable from {Path.cwd()}?)",
            ) from None
        raise SweepProblem(key, f"importing {module_name!r} failed: {error!r}") from None
    except AttributeError as error:
        raise SweepProblem(key, f"cannot import {reference!r}: {error}") from None
    except SystemExit as error:
        raise SweepProblem(
            key,
            f"importing {module_name!r} exited (SystemExit({error.code!r})): does it parse "
            "arguments or call sys.exit at import? Put that under "
            '`if __name__ == "__main__":`',
        ) from None
    except Exception as error:
        last = traceback.extract_tb(error.__traceback__)[-1]
        raise SweepProblem(
            key,
            f"importing {module_name!r} raised {type(error).__name__}: {error} "
            f"({last.filename}, line {last.lineno})",
        ) from None


def _check_function(spec: LearnerSpec):
    function = import_user_object(spec.function, "function")
    if not callable(function):
        raise SweepProblem("function", f"{spec.function!r} is not callable")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind_partial(None)
    except TypeError:
        raise SweepProblem(
            "function", f"{spec.function} takes no argument for the point to evaluate"
        ) from None
    names = {**spec.params, **spec.fixed}
    try:
        signature.bind_partial(None, **names)
    except TypeError as error:
        key = "combos" if set(spec.params) else "fixed"
        raise SweepProblem(
            key, f"{spec.function} does not accept these arguments: {error}"
        ) from None


def _pair(value, where: str) -> tuple[float, float]:
    ok = isinstance(value, list | tuple) and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok:
        raise SweepProblem(where, f"expected [low, high] with two numbers, got {value!r}")
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise SweepProblem(where, f"expected finite low < high, got {value!r}")
    return low, high


def _check_bounds(spec: LearnerSpec, dimension: int | None) -> None:
    if dimension is None:
        return
    bounds = spec.learner_kwargs.get("bounds")
    if bounds is None:
        raise SweepProblem("learner_kwargs.bounds", f"{spec.learner} needs bounds")
    if dimension == 1:
        _pair(bounds, "learner_kwargs.bounds")
        return
    if not isinstance(bounds, list | tuple) or not bounds:
        raise SweepProblem(
            "learner_kwargs.bounds", f"expected a list of [low, high] pairs, got {bounds!r}"
        )
    if dimension > 0 and len(bounds) != dimension:
        raise SweepProblem(
            "learner_kwargs.bounds",
            f"{spec.learner} needs {dimension} [low, high] pairs, got {len(bounds)}",
        )
    for index, pair in enumerate(bounds):
        _pair(pair, f"learner_kwargs.bounds[{index}]")


def _learner_class(spec: LearnerSpec):
    if ":" in spec.learner:
        cls = import_user_object(spec.learner, "learner")
    elif spec.learner in LEARNER_KINDS:
        cls = learner_class(spec.learner)
    else:
        raise SweepProblem(
            "learner",
            f"unknown learner {spec.learner!r} (choose from {sorted(LEARNER_KINDS)}, "
            'or your own class as "module:Class")',
        )
    from adaptive.learner.base_learner import BaseLearner

    if not (isinstance(cls, type) and issubclass(cls, BaseLearner)):
        raise SweepProblem(
            "learner", f"{spec.learner!r} is not a subclass of adaptive's BaseLearner"
        )
    return cls


def _check_learner(spec: LearnerSpec) -> None:
    cls = _learner_class(spec)
    kind = learner_kind(cls)
    signature = inspect.signature(cls.__init__)
    parameters = list(signature.parameters)[2:]  # self, function
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    for key in spec.learner_kwargs:
        if key not in parameters and not takes_any:
            raise SweepProblem(
                f"learner_kwargs.{key}",
                f"{spec.learner} has no argument {key!r} (it takes {', '.join(parameters)})",
            )
    for name in parameters:
        parameter = signature.parameters[name]
        required = parameter.default is inspect.Parameter.empty and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        if required and name not in spec.learner_kwargs:
            raise SweepProblem(f"learner_kwargs.{name}", f"{spec.learner} needs {name!r}")
    # A learner of the user's own kind (no adaptive base we know): building it is the check.
    if kind is not None:
        _check_bounds(spec, kind.needs_bounds)
    if kind is not None and kind.loss_kwarg and kind.loss_kwarg in spec.learner_kwargs:
        try:
            resolve_loss(kind, spec.learner_kwargs[kind.loss_kwarg])
        except SweepProblem:
            raise
        except (ValueError, TypeError, KeyError, ImportError, AttributeError) as error:
            raise SweepProblem(f"learner_kwargs.{kind.loss_kwarg}", str(error)) from None
    if not spec.goal and not hasattr(cls, "done"):
        raise SweepProblem(
            "goal",
            f"empty, and a {spec.learner} never finishes by itself: set npoints, loss or duration",
        )


def _check_sweep(spec: LearnerSpec) -> None:
    _check_learner(spec)
    _check_function(spec)
    try:
        build_learner(spec)
    except Exception as error:
        raise SweepProblem(
            "learner_kwargs", f"{spec.learner} refused them: {type(error).__name__}: {error}"
        ) from None


def check_specs(specs: list[LearnerSpec], path: str | Path) -> None:
    """Raise one ConfigError listing every sweep whose learners cannot be built."""
    problems = []
    checked: set[str] = set()
    for spec in specs:
        if spec.sweep in checked or spec.definition is not None:
            continue  # a sweep built in Python was checked while it was built
        checked.add(spec.sweep)
        try:
            _check_sweep(spec)
        except SweepProblem as problem:
            problems.append(f"{path}: sweep {spec.sweep!r}, key {problem.key!r}: {problem}")
    if problems:
        raise ConfigError("\n".join(problems))
