"""The example sweeps, run by a plain `snakemake` as the README says."""

import csv
import json

import adaptive
import pytest

from examples.functions import peak, ring
from tests.workflow_helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.workflow


def test_example_sweeps_run_to_their_goals(tmp_path):
    workdir = make_workdir(tmp_path)
    run_snakemake(workdir)

    with open(workdir / "results" / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert list(rows[0]) == [
        "name",
        "sweep",
        "offset",
        "width",
        "npoints",
        "loss",
        "elapsed",
        "attempts",
    ]
    by_name = {row["name"]: row for row in rows}
    assert int(by_name["peak/offset~0.5/width~0.01"]["npoints"]) >= 200
    assert int(by_name["ring/width~0.2"]["npoints"]) >= 400

    for row in rows:
        result = json.loads((workdir / "results" / row["name"] / "result.json").read_text())
        assert result["name"] == row["name"]
        assert result["npoints"] >= result["goal"]["npoints"]
        assert result["attempts"] == 1 and result["restored_npoints"] == 0

    # adaptive's own load reads our files: the format is adaptive's
    learner = adaptive.Learner1D(peak, bounds=(-1, 1))
    learner.load(str(workdir / "results/peak/offset~0.5/width~0.01/learner.pickle"))
    assert learner.npoints >= 200
    # points concentrate on the peak at x = 0.5
    near_peak = [x for x in learner.data if abs(x - 0.5) < 0.1]
    assert len(near_peak) > 0.3 * learner.npoints
    learner2d = adaptive.Learner2D(ring, bounds=[(-1, 1), (-1, 1)])
    learner2d.load(str(workdir / "results/ring/width~0.4/learner.pickle"))
    assert learner2d.npoints >= 400

    for sweep in ("peak", "ring"):
        png = workdir / "results" / "plots" / f"{sweep}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000

    # a second run has nothing to do
    again = run_snakemake(workdir)
    assert "Nothing to be done" in again.stderr + again.stdout
