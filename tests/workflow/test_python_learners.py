"""Learners built in Python (adaptive-scheduler style): any learner, their existing data."""

import signal
import textwrap

import adaptive
import pytest

from adaptive_snakemake import load_learner
from tests.workflow_helpers import (
    checkpoint_npoints,
    make_workdir,
    read_result,
    run_snakemake,
    start_snakemake,
    wait_for,
)

pytestmark = pytest.mark.workflow

# The user's file, as an adaptive-scheduler user writes it: a custom loss, a
# BalancingLearner, a DataSaver; fnames in adaptive-scheduler's style.
USER_LEARNERS = textwrap.dedent(
    """
    import functools
    import operator
    import time

    import adaptive
    from adaptive.learner.learner1D import uniform_loss


    def f(x, a=1.0, cost=0.002):
        time.sleep(cost)
        return a * x**2


    def half_uniform_loss(xs, ys):
        return uniform_loss(xs, ys) / 2


    def g(x):
        return {"y": x**3, "x_again": x}


    learners = [
        adaptive.Learner1D(functools.partial(f, a=a), (-1, 1), loss_per_interval=half_uniform_loss)
        for a in (1, 2)
    ] + [
        adaptive.BalancingLearner(
            [adaptive.Learner1D(functools.partial(f, a=a), (-1, 1)) for a in (3, 4)]
        ),
        adaptive.DataSaver(adaptive.Learner1D(g, (-1, 1)), arg_picker=operator.itemgetter("y")),
    ]
    fnames = [f"data/{dict(a=a)}" for a in (1, 2)] + ["data/balanced", "data/saver.pickle"]
    """
)
LEARNERS = """
sweeps:
  py:
    learners: userlearners:learners
    fnames: userlearners:fnames
    import_data: true
    executor: process-pool
    tasks: 2
    goal: {npoints: 30}
    save_interval: 1
    log_interval: 1
"""
NAMES = ["py/data/a_1", "py/data/a_2", "py/data/balanced", "py/data/saver"]


def _workdir(tmp_path, learners=LEARNERS):
    workdir = make_workdir(tmp_path, learners)
    (workdir / "userlearners.py").write_text(USER_LEARNERS)
    return workdir


def test_python_built_learners_run_to_their_goals_and_import_existing_data(tmp_path):
    workdir = _workdir(tmp_path)
    # existing data of the first learner, saved by adaptive itself (an adaptive-scheduler run)
    existing = adaptive.Learner1D(lambda x: x**2, (-1, 1))
    adaptive.runner.simple(existing, npoints_goal=12)
    data_file = workdir / "data" / "{'a': 1}"
    data_file.parent.mkdir()
    existing.save(str(data_file))
    before = data_file.read_bytes()

    run_snakemake(workdir)
    for name in NAMES:
        result = read_result(workdir, name)
        assert result["npoints"] >= 30, name
    assert read_result(workdir, "py/data/a_1")["restored_npoints"] == 12  # imported
    assert read_result(workdir, "py/data/a_2")["restored_npoints"] == 0
    assert data_file.read_bytes() == before  # the user's data file is never modified

    balanced = load_learner("py/data/balanced", workdir)
    assert type(balanced).__name__ == "BalancingLearner"
    assert sum(child.npoints for child in balanced.learners) >= 30
    saver = load_learner("py/data/saver", workdir)
    assert type(saver).__name__ == "DataSaver"
    assert all(extra["x_again"] == x for x, extra in saver.extra_data.items())
    custom = load_learner("py/data/a_2", workdir)
    assert custom.loss_per_interval.__name__ == "half_uniform_loss"
    assert (workdir / "results" / "plots" / "py.png").stat().st_size > 0

    # the same file again: the pickled definitions are stable, nothing reruns
    dry = run_snakemake(workdir, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout


def test_python_built_learner_resumes_after_kill_9(tmp_path):
    import psutil

    learners = LEARNERS.replace("goal: {npoints: 30}", "goal: {npoints: 400}")
    workdir = _workdir(tmp_path, learners)
    # ~10 s of points on 2 workers: the job still runs when the test kills it
    (workdir / "userlearners.py").write_text(USER_LEARNERS.replace("cost=0.002", "cost=0.05"))
    run = start_snakemake(workdir, "results/py/data/a_2/result.json")
    name = "py/data/a_2"
    try:
        wait_for(lambda: checkpoint_npoints(workdir, name) >= 40, 120, "a checkpoint")

        def job_processes():
            """The job and its pool workers (forked: the same command line)."""
            found = []
            for process in psutil.process_iter(["cmdline"]):
                cmdline = process.info["cmdline"] or []
                job_of_learner = f"results/{name}/result.json" in cmdline
                if job_of_learner and "adaptive_snakemake.job" in cmdline:
                    found.append(process)
            return found

        for process in wait_for(job_processes, 30, "the learner's job"):
            process.send_signal(signal.SIGKILL)
        assert run.wait(timeout=300) == 0
    finally:
        if run.poll() is None:
            run.kill()
    result = read_result(workdir, name)
    assert result["attempts"] == 2 and result["restored_npoints"] >= 40
    assert result["npoints"] >= 400


BAD = {
    "module does not import": ("learners: nowhere:learners", ["key 'learners'", "nowhere"]),
    "not a list": ("learners: userbad:number", ["key 'learners'", "not a list"]),
    "not learners": ("learners: userbad:strings", ["key 'learners'", "not an adaptive learner"]),
    "fnames of the wrong length": (
        "learners: userbad:two\n    fnames: userbad:three_names",
        ["key 'fnames'", "3 fnames for 2 learners"],
    ),
    "duplicate names": (
        "learners: userbad:two\n    fnames: userbad:same_names",
        ["same name 'py/x'"],
    ),
    "both kinds": (
        "learners: userbad:two\n    function: userbad:f",
        ["key 'function'", "either `learners`"],
    ),
}
USER_BAD = """
import adaptive


def f(x):
    return x


number = 3
strings = ["a", "b"]
two = [adaptive.Learner1D(f, (-1, 1)) for _ in range(2)]
three_names = ["a", "b", "c"]
same_names = ["x", "x.pickle"]
"""


@pytest.mark.parametrize("case", list(BAD))
def test_bad_python_sweeps_are_refused_before_anything_runs(tmp_path, case):
    keys, expected = BAD[case]
    workdir = make_workdir(tmp_path, f"sweeps:\n  py:\n    {keys}\n")
    (workdir / "userbad.py").write_text(USER_BAD)
    result = run_snakemake(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config/learners.yaml: sweep 'py'" in output, output[-2000:]
    for part in expected:
        assert part in output, output[-2000:]
    assert not (workdir / "results").exists() and not (workdir / "state").exists()


def test_ported_adaptive_scheduler_example_runs(tmp_path):
    """examples/adaptive_scheduler_port.py: adaptive-scheduler's README example, unchanged."""
    workdir = make_workdir(tmp_path)
    port = workdir / "examples" / "adaptive_scheduler_port.yaml"
    port.write_text(port.read_text().replace("npoints: 200", "npoints: 10"))
    run_snakemake(workdir, "--config", "learners=examples/adaptive_scheduler_port.yaml")
    summary = (workdir / "results" / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 20
    assert read_result(workdir, "h/data/pow_9_a_0.5")["npoints"] >= 10
