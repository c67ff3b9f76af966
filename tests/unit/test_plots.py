"""Pictures of every learner type, sweeps of many learners, and `adaptive-snakemake plot`."""

from __future__ import annotations

import io
import json

import adaptive
import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer

from adaptive_snakemake.cli import main
from adaptive_snakemake.results.plots import draw_learner, draw_sweep_learners, learner_png
from adaptive_snakemake.results.report import Described
from adaptive_snakemake.results.result import Result
from tests.unit import learner_functions as fn

PNG = b"\x89PNG\r\n\x1a\n"

KWARGS = {
    "Learner1D": {"bounds": [-1, 1]},
    "Learner2D": {"bounds": [[-1, 1], [-1, 1]]},
    "LearnerND": {"bounds": [[-1, 1], [-1, 1], [-1, 1]]},
    "AverageLearner": {"atol": 0.01},
    "AverageLearner1D": {"bounds": [-1, 1]},
    "SequenceLearner": {"sequence": list(range(20))},
    "IntegratorLearner": {"bounds": [0, 1], "tol": 1e-3},
}
FUNCTIONS = {
    "Learner1D": fn.curve,
    "Learner2D": fn.surface,
    "LearnerND": fn.volume,
    "AverageLearner": fn.noisy,
    "AverageLearner1D": fn.noisy_curve,
    "SequenceLearner": fn.square,
    "IntegratorLearner": fn.curve,
}


def make(kind: str, npoints: int = 60, **kwargs):
    learner_kwargs = {**KWARGS[kind], **kwargs}
    if kind == "SequenceLearner":
        learner = adaptive.SequenceLearner(FUNCTIONS[kind], learner_kwargs["sequence"])
        adaptive.runner.simple(learner)
    else:
        bounds = learner_kwargs.get("bounds")
        if kind in ("Learner2D", "LearnerND"):
            learner_kwargs["bounds"] = [tuple(b) for b in bounds]
        learner = getattr(adaptive, kind)(FUNCTIONS[kind], **learner_kwargs)
        adaptive.runner.simple(learner, npoints_goal=npoints)
    return learner


def image_size(png: bytes) -> tuple[int, int]:
    height, width = plt.imread(io.BytesIO(png)).shape[:2]
    return width, height


@pytest.mark.parametrize("kind", sorted(KWARGS))
def test_every_learner_type_is_drawn(kind):
    learner = make(kind)
    spec = Described(name=f"s/k~{kind}", learner=kind, sweep="s", params={"k": kind})
    png = learner_png(spec, learner)
    assert png.startswith(PNG)
    assert draw_sweep_learners([spec, spec], [learner, None]).startswith(PNG)


def test_learner2d_has_a_colour_bar_and_its_points():
    learner = make("Learner2D", 100)
    figure, axes = plt.subplots()
    draw_learner("Learner2D", learner, axes, figure)
    assert len(figure.axes) == 2  # the image's axes and its colour bar
    assert axes.images, "no interpolated image"
    (points,) = [line for line in axes.lines if line.get_marker() == "."]
    assert len(points.get_xdata()) == learner.npoints
    plt.close(figure)


@pytest.mark.parametrize("kind", ["AverageLearner1D", "AverageLearner"])
def test_averaging_learners_have_error_bars(kind):
    learner = make(kind, 80)
    figure, axes = plt.subplots()
    draw_learner(kind, learner, axes, figure)
    assert any(isinstance(c, ErrorbarContainer) for c in axes.containers)
    plt.close(figure)


def test_a_sweep_of_100_learners_is_a_readable_grid():
    learners = [make("Learner1D", 20) for _ in range(100)]
    specs = [
        Described(name=f"s/a~{i}", learner="Learner1D", sweep="s", params={"a": i})
        for i in range(100)
    ]
    png = draw_sweep_learners(specs, learners)
    width, height = image_size(png)
    assert 1000 < width < 2200 and 1000 < height < 2200  # 10 x 10 panels of ~150 px


def test_a_large_2d_sweep_shares_one_colour_scale():
    learners = [make("Learner2D", 30) for _ in range(20)]
    specs = [
        Described(name=f"s/a~{i}", learner="Learner2D", sweep="s", params={"a": i})
        for i in range(20)
    ]
    assert draw_sweep_learners(specs, learners).startswith(PNG)


def _finished(workdir, name, learner, kind):
    directory = workdir / "results" / name
    directory.mkdir(parents=True)
    learner.save(str(directory / "learner.pickle"))
    Result(
        name=name,
        sweep=name.split("/")[0],
        learner=kind,
        learner_kwargs=KWARGS[kind],
        params={},
        npoints=learner.npoints,
        loss=None,
        elapsed=1.0,
        goal={"npoints": 60},
        reached="npoints",
        attempts=1,
        restored_npoints=0,
        fingerprint="0" * 16,
    ).write(directory / "result.json")


def _checkpointed(workdir, name, learner, kind):
    state = workdir / "state" / f"{name}.pickle"
    state.parent.mkdir(parents=True, exist_ok=True)
    learner.save(str(state))
    spec = {"learner": kind, "learner_kwargs": KWARGS[kind], "goal": {"npoints": 60}}
    meta = {"npoints": learner.npoints, "attempts": 1, "elapsed": 1.0, "spec": spec}
    state.with_suffix(".json").write_text(json.dumps(meta))


def test_plot_command_draws_an_unfinished_sweep_from_checkpoints(tmp_path, capsys):
    _finished(tmp_path, "s/a~1", make("Learner2D", 60), "Learner2D")
    _checkpointed(tmp_path, "s/a~2", make("Learner2D", 25), "Learner2D")
    _checkpointed(tmp_path, "other", make("Learner1D", 25), "Learner1D")
    out = tmp_path / "s.png"
    assert main(["plot", "s", "-d", str(tmp_path), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)
    assert "2 learner(s) of sweep s" in capsys.readouterr().out

    assert main(["plot", "missing", "-d", str(tmp_path), "-o", str(out)]) == 1
    assert "no learner with a result or checkpoint" in capsys.readouterr().err


def _saved_sweep(tmp_path, kind: str, count: int):
    """A sweep's specs and saved learners (adaptive's format, as the jobs write them)."""
    from adaptive_snakemake.job.checkpoint import save_learner
    from adaptive_snakemake.specs.parse import parse_specs

    document = {
        "sweeps": {
            "s": {
                "function": "tests.unit.learner_functions:curve",
                "learner": kind,
                "learner_kwargs": KWARGS[kind],
                "combos": {"a": list(range(count))},
            }
        }
    }
    specs = parse_specs(document)
    learners = [make(kind, 30 + 5 * i) for i in range(count)]
    paths = []
    for spec, learner in zip(specs, learners, strict=True):
        path = tmp_path / spec.name / "learner.pickle"
        path.parent.mkdir(parents=True)
        save_learner(learner, path)
        paths.append(path)
    return specs, learners, paths


@pytest.mark.parametrize(
    "kind, count", [("Learner1D", 3), ("Learner1D", 20), ("SequenceLearner", 2)]
)
def test_a_sweep_drawn_from_its_saved_points_is_the_picture_of_its_learners(tmp_path, kind, count):
    """Plain Learner1D and SequenceLearner sweeps are drawn from the saved points alone (no
    learners rebuilt): the same picture, byte for byte."""
    from adaptive_snakemake.results.plots import draw_sweep

    specs, learners, paths = _saved_sweep(tmp_path, kind, count)
    assert draw_sweep(specs, paths) == draw_sweep_learners(specs, learners, total=count)


def test_drawing_a_learner1d_sweep_does_not_import_adaptive(tmp_path):
    """What the sweep's picture at the end of every run costs: no ~0.5 s import of adaptive
    for plain 1D learners (a fresh interpreter, as the workflow's plot rule runs it)."""
    import subprocess
    import sys

    specs, _, paths = _saved_sweep(tmp_path, "Learner1D", 20)
    (tmp_path / "specs.json").write_text(json.dumps([str(spec) for spec in specs]))
    code = f"""
import json, sys
from adaptive_snakemake.results.plots import write_sweep_plot
from adaptive_snakemake.specs.parse import LearnerSpec
specs = [LearnerSpec.from_json(text) for text in json.load(open({str(tmp_path / "specs.json")!r}))]
write_sweep_plot(specs, {[str(p) for p in paths]!r}, {str(tmp_path / "s.png")!r})
print(sorted(name for name in sys.modules if name.split(".")[0] in ("adaptive", "pandas")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)


def test_a_corrupt_saved_learner_stops_the_sweep_picture_with_what_to_do(tmp_path):
    from adaptive_snakemake.job.checkpoint import CheckpointError
    from adaptive_snakemake.results.plots import draw_sweep

    specs, _, paths = _saved_sweep(tmp_path, "Learner1D", 2)
    paths[1].write_bytes(paths[1].read_bytes()[:-8])  # truncated
    with pytest.raises(CheckpointError, match=f"{paths[1]} cannot be read.*mv "):
        draw_sweep(specs, paths)
