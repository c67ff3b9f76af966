"""Editing learners.yaml reruns only what changed; a raised goal continues from the data."""

import pytest

from tests.workflow_helpers import make_workdir, read_result, run_snakemake

pytestmark = pytest.mark.workflow

LEARNERS = """
defaults:
  executor: sequential
  tasks: 1
  save_interval: 1
  log_interval: 1
  goal: {npoints: 30}
sweeps:
  a:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    fixed: {cost: 0}
  b:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {offset: [0.1, 0.2]}
    fixed: {cost: 0}
"""


def _mtimes(workdir, names):
    return {n: (workdir / "results" / n / "result.json").stat().st_mtime_ns for n in names}


def test_raised_goal_reruns_one_learner_and_continues(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    run_snakemake(workdir)
    names = ["a", "b/offset~0.1", "b/offset~0.2"]
    before = _mtimes(workdir, names)
    assert read_result(workdir, "a")["npoints"] == 30

    learners = workdir / "config" / "learners.yaml"
    text = learners.read_text().replace(
        "    learner_kwargs: {bounds: [-1, 1]}\n    fixed: {cost: 0}\n  b:",
        "    learner_kwargs: {bounds: [-1, 1]}\n    fixed: {cost: 0}\n"
        "    goal: {npoints: 60}\n  b:",
    )
    assert text != learners.read_text()
    learners.write_text(text)
    dry = run_snakemake(workdir, "-n")
    assert "output: results/a/learner.pickle" in dry.stdout
    assert "output: results/b/offset~0.1/learner.pickle" not in dry.stdout

    run_snakemake(workdir)
    after = _mtimes(workdir, names)
    result = read_result(workdir, "a")
    assert result["npoints"] == 60
    assert result["restored_npoints"] == 30  # continued, did not start from zero
    assert result["attempts"] == 2
    assert after["a"] != before["a"]
    assert after["b/offset~0.1"] == before["b/offset~0.1"]
    assert after["b/offset~0.2"] == before["b/offset~0.2"]


def test_added_grid_value_runs_only_the_new_learner(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    run_snakemake(workdir)
    before = _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"])

    learners = workdir / "config" / "learners.yaml"
    learners.write_text(learners.read_text().replace("[0.1, 0.2]", "[0.1, 0.2, 0.3]"))
    run_snakemake(workdir)
    assert read_result(workdir, "b/offset~0.3")["npoints"] == 30
    assert _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"]) == before
    summary = (workdir / "results" / "summary.csv").read_text()
    assert "b/offset~0.3" in summary


def test_other_learners_file_from_the_command_line(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    other = workdir / "config" / "other.yaml"
    other.write_text(LEARNERS.replace("offset: [0.1, 0.2]", "offset: [0.7]"))
    run_snakemake(workdir, "--config", "learners=config/other.yaml")
    assert read_result(workdir, "b/offset~0.7")["npoints"] == 30
    assert not (workdir / "results" / "b" / "offset~0.1").exists()


def test_another_file_and_other_run_settings_rerun_nothing(tmp_path):
    """The job's spec comes from Snakemake, but only the definition and goal rerun a learner:
    not the learners file's path, nor intervals, executor settings or resources."""
    workdir = make_workdir(tmp_path, LEARNERS)
    run_snakemake(workdir)
    before = _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"])
    other = workdir / "config" / "other.yaml"
    other.write_text(
        LEARNERS.replace("save_interval: 1", "save_interval: 7")
        .replace("log_interval: 1", "log_interval: 3\n  resources: {runtime: 9, mem_mb: 700}")
        .replace("executor: sequential\n  tasks: 1", "executor: process-pool\n  tasks: 2")
    )
    dry = run_snakemake(workdir, "-n", "--config", "learners=config/other.yaml")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout
    run_snakemake(workdir, "--config", "learners=config/other.yaml")
    assert _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"]) == before


def test_changed_definition_reruns_from_zero_and_keeps_the_old_checkpoint(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    run_snakemake(workdir)
    before = _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"])
    learners = workdir / "config" / "learners.yaml"
    # sweep b's bounds change: both of its learners compute something else now
    learners.write_text(
        learners.read_text().replace(
            "{bounds: [-1, 1]}\n    combos", "{bounds: [0, 1]}\n    combos"
        )
    )
    run_snakemake(workdir)
    after = _mtimes(workdir, ["a", "b/offset~0.1", "b/offset~0.2"])
    assert after["a"] == before["a"]
    result = read_result(workdir, "b/offset~0.1")
    assert after["b/offset~0.1"] != before["b/offset~0.1"]
    assert result["restored_npoints"] == 0 and result["npoints"] == 30
    kept = list((workdir / "state" / "b").glob("offset~0.1.pickle.superseded-*"))
    assert len(kept) == 1
