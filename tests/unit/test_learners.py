"""Every supported learner type runs to its goal, saves, restores and plots."""

import numpy as np
import pytest

from adaptive_snakemake import load_learner, load_learners, load_results
from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.job.checkpoint import restore_learner
from adaptive_snakemake.job.learners import build_learner
from adaptive_snakemake.job.runner import LearnerRun
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.results.plots import draw_sweep
from adaptive_snakemake.specs.parse import parse_specs
from adaptive_snakemake.specs.validation import check_specs

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

    # back in Python, as a user loads it: the same data, for reading (no function needed)
    loaded = load_learner("s", tmp_path)
    assert type(loaded) is type(run.learner)
    assert loaded.data.keys() == run.learner.data.keys()
    for key, value in run.learner.data.items():
        assert np.allclose(loaded.data[key], value)
    assert len(load_results(workdir=tmp_path)) > 0


def test_unfinished_learner_loads_from_its_checkpoint_and_results_have_params(tmp_path):
    spec = parse_specs(
        {
            "sweeps": {
                "g": {
                    "function": f"{F}:curve",
                    "learner": "Learner1D",
                    "learner_kwargs": {"bounds": [-1, 1]},
                    "executor": "sequential",
                    "tasks": 1,
                    "goal": {"npoints": 30},
                    "combos": {"a": [1, 2]},
                }
            }
        }
    )
    finished, unfinished = spec
    run = LearnerRun(finished, LearnerFiles.of(finished.name, tmp_path))
    run.write_results(run.run())
    partial = LearnerRun(unfinished, LearnerFiles.of(unfinished.name, tmp_path))
    partial.learner.tell_many([-1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    partial.save()  # a checkpoint, no result yet
    assert load_learner("g/a~2", tmp_path).npoints == 3
    assert sorted(load_learners("g", tmp_path)) == ["g/a~1", "g/a~2"]
    frame = load_results("g", tmp_path)
    assert list(frame.columns[:3]) == ["name", "sweep", "a"]
    assert len(frame) == 30 + 3
    assert set(frame["a"]) == {1, 2}
    with pytest.raises(KeyError, match="no result and no checkpoint"):
        load_learner("g/a~3", tmp_path)


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


def _custom(learner, **kwargs):
    return parse_specs(
        {
            "sweeps": {
                "c": {
                    "function": f"{F}:curve",
                    "learner": learner,
                    "learner_kwargs": {"bounds": [-1, 1], **kwargs},
                    "executor": "sequential",
                    "tasks": 1,
                    "goal": {"npoints": 25},
                }
            }
        }
    )


def test_custom_learner_class_and_loss_by_name(tmp_path):
    specs = _custom(f"{F}:CountingLearner1D", loss_per_interval=f"{F}:half_uniform_loss")
    check_specs(specs, "learners.yaml")
    run = LearnerRun(specs[0], LearnerFiles.of("c", tmp_path))
    run.write_results(run.run())
    assert type(run.learner).__name__ == "CountingLearner1D" and run.learner.told >= 25
    assert run.learner.loss_per_interval.__name__ == "half_uniform_loss"
    loaded = load_learner("c", tmp_path)
    assert type(loaded).__name__ == "CountingLearner1D" and loaded.npoints == 25


def test_function_without_a_parameter_for_the_point_is_blamed_on_function():
    specs = _custom("Learner1D")
    spec = specs[0].__class__(**{**specs[0].to_dict(), "function": f"{F}:no_point"})
    with pytest.raises(ConfigError, match="key 'function'.*no argument for the point"):
        check_specs([spec], "learners.yaml")


@pytest.mark.parametrize(
    ("learner", "kwargs", "key", "words"),
    [
        (f"{F}:NotALearner", {}, "learner", "not a subclass of adaptive's BaseLearner"),
        (f"{F}:Missing", {}, "learner", "has no attribute 'Missing'"),
        ("nowhere.mod:Learner", {}, "learner", "no module named 'nowhere'"),
        (f"{F}:CountingLearner1D", {"loss_per_interval": f"{F}:nope"}, "loss_per_interval", "nope"),
    ],
)
def test_custom_classes_are_checked_at_parse_time(learner, kwargs, key, words):
    with pytest.raises(ConfigError) as error:
        check_specs(_custom(learner, **kwargs), "learners.yaml")
    message = str(error.value)
    assert "sweep 'c'" in message and key in message and words in message, message
