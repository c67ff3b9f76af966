"""Building adaptive learners from specs.

Loss functions are chosen by name in `learner_kwargs`, e.g.
`loss_per_interval: curvature_loss_function` or, for factories with arguments,
`loss_per_interval: {name: resolution_loss_function, min_length: 0.01}`.
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from adaptive_snakemake.specs.parse import LearnerSpec


@dataclass(frozen=True)
class LearnerKind:
    class_name: str
    loss_kwarg: str | None  # the keyword that takes a loss function
    loss_module: str | None  # where adaptive defines the named loss functions
    needs_bounds: int | None  # dimension of `bounds` (None: no bounds; -1: any >= 1)


LEARNER_KINDS = {
    kind.class_name: kind
    for kind in [
        LearnerKind("Learner1D", "loss_per_interval", "adaptive.learner.learner1D", 1),
        LearnerKind("Learner2D", "loss_per_triangle", "adaptive.learner.learner2D", 2),
        LearnerKind("LearnerND", "loss_per_simplex", "adaptive.learner.learnerND", -1),
        LearnerKind("AverageLearner", None, None, None),
        LearnerKind("AverageLearner1D", "loss_per_interval", "adaptive.learner.learner1D", 1),
        LearnerKind("SequenceLearner", None, None, None),
        LearnerKind("IntegratorLearner", None, None, 1),
    ]
}


def import_function(reference: str):
    """The object named by "module:attribute", importable from the working directory."""
    module_name, _, attribute = reference.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        # Jobs run scripts by path, which puts the script's folder on sys.path, not the
        # working directory where the user's modules live.
        sys.path.insert(0, str(Path.cwd()))
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def learner_class(name: str):
    """The learner class `name`: adaptive's (`Learner1D`) or the user's (`module:Class`)."""
    if ":" in name:
        return import_function(name)
    import adaptive  # imported here: adaptive takes a second to import

    return getattr(adaptive, name)


def learner_kind(cls) -> LearnerKind | None:
    """The kind of adaptive learner `cls` is or derives from (None: no known base)."""
    for base in cls.__mro__:
        kind = LEARNER_KINDS.get(base.__name__)
        if kind is not None and base.__module__.startswith("adaptive."):
            return kind
    return None


def resolve_loss(kind: LearnerKind, choice):
    """The loss function named by `choice`: one of adaptive's by name, the user's as
    "module:function", or a factory with arguments as a mapping {name: ..., **kwargs}."""
    if isinstance(choice, str):
        name, kwargs = choice, {}
    else:
        kwargs = dict(choice)
        name = kwargs.pop("name")
    if ":" in name:
        loss = import_function(name)
        if not callable(loss):
            raise ValueError(f"{name!r} is not callable")
        return loss(**kwargs) if kwargs else loss
    module = importlib.import_module(kind.loss_module)
    available = sorted(n for n in dir(module) if "loss" in n and not n.startswith("_"))
    if name not in available:
        raise ValueError(
            f"unknown loss {name!r} for {kind.class_name} (choose from {available}, "
            'or give your own as "module:function")'
        )
    loss = getattr(module, name)
    # Factories (e.g. curvature_loss_function) return the loss; plain losses take (xs, ys).
    if name.endswith("_loss_function"):
        return loss(**kwargs)
    if kwargs:
        raise ValueError(f"loss {name!r} takes no arguments, got {sorted(kwargs)}")
    return loss


def learner_function(spec: LearnerSpec):
    """The function the learner samples: the user's function with combo and fixed kwargs bound."""
    function = import_function(spec.function)
    if not spec.params and not spec.fixed:
        return function
    return functools.partial(function, **spec.params, **spec.fixed)


def resolved_kwargs(class_name: str, kwargs: dict) -> dict:
    """learners.yaml's learner_kwargs as the class takes them (loss names -> functions)."""
    kind = learner_kind(learner_class(class_name))
    kwargs = dict(kwargs)
    if kind and kind.loss_kwarg and kind.loss_kwarg in kwargs:
        kwargs[kind.loss_kwarg] = resolve_loss(kind, kwargs[kind.loss_kwarg])
    return kwargs


def learner_kwargs(spec: LearnerSpec) -> dict:
    return resolved_kwargs(spec.learner, spec.learner_kwargs)


def unpickle_learner(definition: str, workdir: str | Path = "."):
    """A learner built in Python, from its pickled definition (specs.python_sweeps).

    The pickle names the user's module (by reference): it must be importable from the
    workflow directory `workdir`.
    """
    import base64

    import cloudpickle

    directory = str(Path(workdir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return cloudpickle.loads(base64.b64decode(definition))


def build_learner(spec: LearnerSpec):
    """A fresh adaptive learner for `spec` (no data yet)."""
    if spec.definition is not None:
        return unpickle_learner(spec.definition)
    cls = learner_class(spec.learner)
    return cls(learner_function(spec), **learner_kwargs(spec))
