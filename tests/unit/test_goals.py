import math

import adaptive

from adaptive_snakemake.job.goals import goal_reached, learner_loss
from adaptive_snakemake.specs.durations import parse_duration


def _learner(npoints):
    learner = adaptive.Learner1D(lambda x: x**2, bounds=(-1, 1))
    for _ in range(npoints):
        (x,), _ = learner.ask(1)
        learner.tell(x, x**2)
    return learner


def test_first_goal_met_wins():
    learner = _learner(20)
    assert goal_reached({"npoints": 20}, learner, 0) == "npoints"
    assert goal_reached({"npoints": 21}, learner, 0) is None
    assert goal_reached({"npoints": 100, "duration": 5}, learner, 5.0) == "duration"
    assert goal_reached({"npoints": 100, "duration": 5}, learner, 4.9) is None
    loss = learner_loss(learner)
    assert goal_reached({"loss": loss * 1.01}, learner, 0) == "loss"
    assert goal_reached({"loss": loss * 0.99}, learner, 0) is None


def test_loss_goal_is_not_met_by_an_empty_learner():
    learner = _learner(0)
    assert learner_loss(learner) == math.inf
    assert goal_reached({"loss": 1e9}, learner, 0) is None


def test_learners_that_know_when_they_are_done_need_no_goal():
    learner = adaptive.SequenceLearner(lambda x: x, sequence=[1, 2, 3])
    assert goal_reached({}, learner, 0) is None
    points, _ = learner.ask(3)
    for point in points:
        learner.tell(point, point[1])
    assert goal_reached({}, learner, 0) == "done"


def test_durations():
    assert parse_duration(90) == 90.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("2h") == 7200.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("1d") == 86400.0
    for bad in (0, -1, "soon", "5 parsecs", True):
        try:
            parse_duration(bad)
        except ValueError as error:
            assert repr(bad) in str(error)
        else:
            raise AssertionError(f"{bad!r} accepted")
