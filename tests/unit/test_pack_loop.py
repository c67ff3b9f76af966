"""The learners of a pack share one executor, each to its own goal and outcome."""

import json
from pathlib import Path

from adaptive_snakemake.job.runner import run_learners
from adaptive_snakemake.layout import LearnerFiles
from adaptive_snakemake.specs.parse import parse_specs

F = "tests.unit.learner_functions"


def _specs(sweeps: dict, executor="process-pool", tasks=2):
    defaults = {"executor": executor, "tasks": tasks, "pack": 4, "save_interval": 1}
    return parse_specs({"defaults": defaults, "sweeps": sweeps})


def _run(specs, tmp_path: Path) -> tuple[int, dict]:
    members = [(spec, LearnerFiles.of(spec.name, tmp_path), None) for spec in specs]
    code = run_learners(members, own_logs=True)
    results = {}
    for spec, files, _ in members:
        if files.result.exists():
            results[spec.name] = json.loads(files.result.read_text())
    return code, results


def test_a_pack_reaches_every_goal_on_one_pool_and_logs_per_learner(tmp_path):
    specs = _specs(
        {
            "c": {
                "function": f"{F}:curve",
                "learner": "Learner1D",
                "learner_kwargs": {"bounds": [-1, 1]},
                "combos": {"a": [1, 2, 3]},
                "goal": {"npoints": 30},
            }
        }
    )
    code, results = _run(specs, tmp_path)
    assert code == 0
    assert sorted(results) == ["c/a~1", "c/a~2", "c/a~3"]
    # a learner stops at its goal, and is never asked for points past it
    assert all(result["npoints"] == 30 for result in results.values())
    for spec in specs:
        log = (tmp_path / "logs" / "learners" / f"{spec.name}.log").read_text()
        assert f"{spec.name}: goal npoints reached:" in log
        assert '"status":"done"' in log  # its metrics records too
        # another learner's messages are not in this learner's log
        assert all(other.name not in log for other in specs if other is not spec)


def test_one_learner_failing_ends_only_that_learner(tmp_path):
    specs = _specs(
        {
            "ok": {
                "function": f"{F}:curve",
                "learner": "Learner1D",
                "learner_kwargs": {"bounds": [-1, 1]},
                "goal": {"npoints": 40},
            },
            "bad": {
                "function": f"{F}:fails_above",
                "learner": "Learner1D",
                "learner_kwargs": {"bounds": [-1, 1]},
                "goal": {"npoints": 40},
                "point_retries": 0,
            },
        }
    )
    code, results = _run(specs, tmp_path)
    assert code == 1
    assert list(results) == ["ok"] and results["ok"]["npoints"] >= 40
    failure = json.loads((tmp_path / "state" / "bad.failed.json").read_text())
    assert "is above 0.5" in failure["error"]
    assert (tmp_path / "state" / "bad.pickle").exists()  # saved for the retry


def test_learners_of_different_types_and_ones_that_run_dry_share_the_workers(tmp_path):
    """A SequenceLearner with fewer points left than workers, next to a Learner1D and an
    AverageLearner (BalancingLearner would refuse the mix)."""
    specs = _specs(
        {
            "seq": {
                "function": f"{F}:square",
                "learner": "SequenceLearner",
                "learner_kwargs": {"sequence": [1, 2, 3]},
                "goal": {},
            },
            "line": {
                "function": f"{F}:curve",
                "learner": "Learner1D",
                "learner_kwargs": {"bounds": [-1, 1]},
                "goal": {"npoints": 25},
            },
            "avg": {
                "function": f"{F}:noisy",
                "learner": "AverageLearner",
                "learner_kwargs": {"atol": 0.2},
                "goal": {"npoints": 20},
            },
        },
        tasks=4,
    )
    code, results = _run(specs, tmp_path)
    assert code == 0
    assert results["seq"]["npoints"] == 3 and results["seq"]["reached"] == "done"
    assert results["line"]["npoints"] >= 25 and results["avg"]["npoints"] >= 20


def test_a_finished_member_is_not_computed_again(tmp_path):
    """A retry of a pack: the member at its goal writes its results from its checkpoint."""
    sweep = {
        "c": {
            "function": f"{F}:curve",
            "learner": "Learner1D",
            "learner_kwargs": {"bounds": [-1, 1]},
            "combos": {"a": [1, 2]},
            "goal": {"npoints": 30},
        }
    }
    specs = _specs(sweep)
    code, first = _run(specs[:1], tmp_path)
    assert code == 0
    code, results = _run(specs, tmp_path)
    assert code == 0
    assert results["c/a~1"]["restored_npoints"] == first["c/a~1"]["npoints"]
    assert results["c/a~1"]["npoints"] == first["c/a~1"]["npoints"]  # nothing computed
    assert results["c/a~2"]["restored_npoints"] == 0 and results["c/a~2"]["npoints"] >= 30


class _CountingPool:
    """A real process pool that remembers the most points it ever had in flight."""

    def __init__(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=workers)
        self.in_flight: set = set()
        self.most = 0

    def submit(self, function, point):
        future = self.pool.submit(function, point)
        self.in_flight.add(future)
        self.in_flight = {f for f in self.in_flight if not f.done()}
        self.most = max(self.most, len(self.in_flight))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _max_in_flight(tmp_path: Path, monkeypatch, queue_ahead_below: float) -> tuple[int, dict]:
    from adaptive_snakemake.job import loop

    pool = _CountingPool(2)
    monkeypatch.setattr(loop, "make_executor", lambda kind, tasks: (pool, 2))
    monkeypatch.setattr(loop, "QUEUE_AHEAD_BELOW_S", queue_ahead_below)
    sweep = {
        "c": {
            "function": f"{F}:curve",
            "learner": "Learner1D",
            "learner_kwargs": {"bounds": [-1, 1]},
            "goal": {"npoints": 200},
        }
    }
    code, results = _run(_specs(sweep), tmp_path)
    assert code == 0
    return pool.most, results["c"]


def test_short_points_get_a_second_point_queued_per_worker(tmp_path, monkeypatch):
    most, result = _max_in_flight(tmp_path, monkeypatch, queue_ahead_below=60.0)
    assert most == 4  # 2 workers, each with one point running and one queued
    assert result["npoints"] == 200  # none asked for past the goal, though queued ahead


def test_long_points_are_asked_for_one_per_worker(tmp_path, monkeypatch):
    # every point counts as long: each is chosen with all earlier results known
    most, result = _max_in_flight(tmp_path, monkeypatch, queue_ahead_below=0.0)
    assert most == 2
    assert result["npoints"] == 200
