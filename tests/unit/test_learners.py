"""Every supported learner type runs to its goal, saves, restores and plots."""

import pytest

from adaptive_snakemake.job.checkpoint import restore_learner
from adaptive_snakemake.job.learners import build_learner
from adaptive_snakemake.job.runner import LearnerRun
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.results.plots import draw_sweep
from adaptive_snakemake.specs.parse import parse_specs

F = "tests.unit.learner_functions"
KINDS = {
    "Learner1D": (
        f"{F}:curve",
        {"bounds": [-1, 1], "loss_per_interval": "curvature_loss_function"},
        {"npoints": 40},
    ),
    "Learner2D": (
        f"{F}:surface",
        {"bounds": [[-1, 1], [-1, 1]], "loss_per_triangle": "uniform_loss"},
        {"npoints": 40},
    ),
    "LearnerND": (f"{F}:volume", {"bounds": [[-1, 1], [-1, 1], [-1, 1]]}, {"npoints": 30}),
    "AverageLearner": (f"{F}:noisy", {"atol": 0.2}, {"npoints": 30}),
    "AverageLearner1D": (f"{F}:noisy_curve", {"bounds": [-1, 1]}, {"npoints": 60}),
    "SequenceLearner": (f"{F}:square", {"sequence": list(range(25))}, {}),
    "IntegratorLearner": (f"{F}:curve", {"bounds": [0, 1], "tol": 1e-3}, {}),
}


def _spec(kind):
    function, kwargs, goal = KINDS[kind]
    document = {
        "sweeps": {
            "s": {
                "function": function,
                "learner": kind,
                "learner_kwargs": kwargs,
                "executor": "sequential",
                "tasks": 1,
                "goal": goal,
            }
        }
    }
    return parse_specs(document)[0]


@pytest.mark.parametrize("kind", list(KINDS))
def test_learner_runs_to_goal_saves_restores_and_plots(tmp_path, kind):
    spec = _spec(kind)
    run = LearnerRun(spec, LearnerFiles.of(spec.name, tmp_path))
    reached = run.run()
    assert reached == ("done" if not spec.goal else "npoints")
    result = run.write_results(reached)
    assert result.npoints >= spec.goal.get("npoints", 1)

    fresh = build_learner(spec)
    restored = restore_learner(fresh, tmp_path / "results" / "s" / "learner.pickle")
    assert restored == result.npoints
    assert fresh.data.keys() == run.learner.data.keys()

    png = draw_sweep([spec], [tmp_path / "results" / "s" / "learner.pickle"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_functions_are_chosen_by_name_and_factories_take_arguments():
    from adaptive.learner.learner1D import uniform_loss

    spec = _spec("Learner1D")
    named = parse_specs(
        {
            "sweeps": {
                "s": {
                    **_document_of(spec),
                    "learner_kwargs": {"bounds": [0, 1], "loss_per_interval": "uniform_loss"},
                }
            }
        }
    )[0]
    assert build_learner(named).loss_per_interval is uniform_loss
    factory = parse_specs(
        {
            "sweeps": {
                "s": {
                    **_document_of(spec),
                    "learner_kwargs": {
                        "bounds": [0, 1],
                        "loss_per_interval": {
                            "name": "resolution_loss_function",
                            "min_length": 0.1,
                        },
                    },
                }
            }
        }
    )[0]
    learner = build_learner(factory)
    assert learner.loss_per_interval.__name__ != "default_loss"


def _document_of(spec):
    return {
        "function": spec.function,
        "learner": spec.learner,
        "executor": "sequential",
        "tasks": 1,
    }
