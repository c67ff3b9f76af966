"""A bad learners.yaml is refused before any job starts (file, sweep, key); nothing is written."""

import pytest

from tests.workflow_helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.workflow

GOOD_SWEEP = """
  ok:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: sequential
    tasks: 1
"""

CASES = {
    "unknown key": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}, colour: red}",
        ["sweep 's'", "unknown key 'colour'"],
    ),
    "missing function": (
        "sweeps:\n  s: {function: examples.functions:nope, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}}",
        ["sweep 's', key 'function'", "nope"],
    ),
    "module missing": (
        "sweeps:\n  s: {function: nowhere.mod:f, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}}",
        ["sweep 's', key 'function'", "no module named 'nowhere'"],
    ),
    "raises on import": (
        "sweeps:\n  s: {function: broken:f, learner: Learner1D, learner_kwargs: {bounds: [0, 1]}}",
        ["sweep 's', key 'function'", "RuntimeError: boom"],
    ),
    "bad bounds": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [1, -1]}}",
        ["sweep 's', key 'learner_kwargs.bounds'", "low < high"],
    ),
    "2d bounds": (
        "sweeps:\n  s: {function: examples.functions:ring, learner: Learner2D, "
        "learner_kwargs: {bounds: [-1, 1]}}",
        ["sweep 's', key 'learner_kwargs.bounds"],
    ),
    "unknown learner": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner9D}",
        ["sweep 's', key 'learner'", "unknown learner 'Learner9D'"],
    ),
    "unknown learner kwarg": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1], tol: 3}}",
        ["key 'learner_kwargs.tol'"],
    ),
    "unknown loss": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1], loss_per_interval: best_loss}}",
        ["key 'learner_kwargs.loss_per_interval'", "best_loss"],
    ),
    "function does not take combo": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}, combos: {colour: [1, 2]}}",
        ["sweep 's', key 'combos'", "colour"],
    ),
    "unknown executor": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, executor: ray}",
        ["sweep 's', key 'executor'", "ray"],
    ),
    "negative interval": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, save_interval: -1}",
        ["sweep 's', key 'save_interval'"],
    ),
    "empty grid": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "combos: {offset: []}}",
        ["sweep 's', key 'combos.offset'"],
    ),
    "wrong type": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, tasks: many}",
        ["sweep 's', key 'tasks'", "integer"],
    ),
    "duplicate names": (
        "sweeps:\n  s: {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}, combos: {offset: [1, '1']}}",
        ["same name"],
    ),
    "malformed yaml": ("sweeps:\n  s: {function: [", ["malformed YAML", "line"]),
    "path traversal": (
        "sweeps:\n  '..': {function: examples.functions:peak, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}, combos: {offset: [0]}}",
        ["sweep '..'", "invalid name"],
    ),
    # argparse at import exits; the other sweeps' problems must still be reported.
    "exits on import, and another error": (
        "sweeps:\n  a: {function: exits:f, learner: Learner1D, learner_kwargs: {bounds: [0, 1]}}"
        "\n  b: {function: examples.functions:nope, learner: Learner1D, "
        "learner_kwargs: {bounds: [0, 1]}}",
        ["sweep 'a', key 'function'", "'exits' exited (SystemExit(2))", "sweep 'b'", "nope"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_learners_file_is_refused_and_nothing_is_written(tmp_path, case):
    bad, expected = CASES[case]
    text = bad if case == "malformed yaml" else bad + "\n" + GOOD_SWEEP
    workdir = make_workdir(tmp_path, text)
    (workdir / "broken.py").write_text("raise RuntimeError('boom')\n")
    (workdir / "exits.py").write_text(
        "import argparse\nargparse.ArgumentParser().parse_args(['--unknown'])\n"
    )
    result = run_snakemake(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config/learners.yaml" in output
    for part in expected:
        assert part in output, output[-3000:]
    for written in ("results", "state", "logs"):
        assert not (workdir / written).exists(), f"{written}/ was created"
