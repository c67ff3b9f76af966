"""The report (`adaptive-snakemake report`: the pages, then `snakemake --report`): a finished
run and a half-finished one, opened in real Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow_helpers import environment, make_workdir, run_snakemake

pytestmark = pytest.mark.workflow

FUNCTIONS = """
import time

def smooth(x, a=1.0):
    time.sleep(0.001)
    return a * x**2

def breaks(x, a=1.0):
    if x > 0.5:
        raise ValueError("breaks above 0.5")
    return a * x

def noisy(seed_x, a=1.0):
    import random
    seed, x = seed_x
    return a * x + random.Random(seed).gauss(0, 0.1)
"""

LEARNERS = """
defaults:
  executor: sequential
  tasks: 1
  goal: {npoints: 40}
  save_interval: 1
  log_interval: 0.5
  resources: {runtime: 5, mem_mb: 500}
sweeps:
  line:
    function: report_functions:smooth
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {a: [1, 2]}
  broken:
    function: report_functions:breaks
    learner: Learner1D
    learner_kwargs: {bounds: [0, 1]}
    point_retries: 0
  avg:
    function: report_functions:noisy
    learner: AverageLearner1D
    learner_kwargs: {bounds: [-1, 1]}
    goal: {npoints: 30}
"""


def chromium() -> str:
    """Debian's chromium; CI (CI=true) must have it (the README's set-up installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; the README's test set-up installs it in CI")
        pytest.skip(message)
    return path


def browse(html: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root (CI containers)
        "--disable-gpu",
        "--hide-scrollbars",
        "--virtual-time-budget=8000",
        *args,
        html.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def report_results(report: Path) -> dict:
    """The `results` object Snakemake's report embeds: path -> name, labels, data_uri, ..."""
    text = report.read_text()
    match = re.search(r"var results = (\{.*?\});\n", text) or re.search(
        r"results = (\{.*?\})\s*[;\n]", text
    )
    assert match, "no results object in the report"
    return json.loads(match.group(1))


def embedded(results: dict, path: str) -> bytes:
    uri = results[path]["data_uri"]
    return base64.b64decode(uri.split(",", 1)[1])


def open_in_report(report: Path, result_path: str, category: str, fragment: str = "") -> Path:
    """A copy of the report that shows `result_path` on load, as clicking its category and
    then its view button does."""
    script = (
        "<script>window.addEventListener('load',()=>setTimeout(()=>{"
        f"const p={json.dumps(result_path)};app.showCategory({json.dumps(category)});"
        "app.setView({content:'html',contentPath:results[p].data_uri"
        f"+{json.dumps(fragment)},resultPath:p}});}},300));</script>"
    )
    copy = report.with_name(f"open-{Path(result_path).stem}.html")
    head, tag, tail = report.read_text().rpartition("</body>")
    copy.write_text(head + script + tag + tail)
    return copy


def make_report(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`adaptive-snakemake report [args]` as a user runs it in the workflow directory."""
    command = [sys.executable, "-m", "adaptive_snakemake.cli", "report", *args]
    done = subprocess.run(
        command, cwd=workdir, env=environment(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-6000:]
    assert "report written to report.html" in done.stdout
    return done


def check_report(workdir: Path, sweeps: list[str]) -> dict:
    report = workdir / "report.html"
    assert report.stat().st_size > 0
    results = report_results(report)
    expected = {f"results/report/sweeps/{s}.{ext}" for s in sweeps for ext in ("html", "png")}
    expected |= {f"results/report/{f}" for f in ("summary.html", "timeline.png", "convergence.png")}
    assert expected <= set(results)

    # Chromium runs the report's app: the menu lists the categories.
    dom = browse(report, "--dump-dom").stdout
    visible = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    for category in ["Run", *sweeps]:
        assert re.search(rf">\s*{re.escape(category)}\s*<", visible), category
    return results


def check_sweep_page(workdir: Path, results: dict, sweep: str, learner: str, state: str):
    """The sweep's page as the report embeds it: table, picture, the learner's page."""
    page = workdir / f"page-{sweep}.html"
    page.write_bytes(embedded(results, f"results/report/sweeps/{sweep}.html"))
    dom = browse(page.with_name(page.name), "--dump-dom").stdout
    assert '<table id="learners">' in dom
    assert dom.count("data:image/png;base64,") >= 2  # the sweep's picture and a learner's
    # The learner's page, opened at its address (#name), is shown with its fields.
    url_page = page.with_name(f"page-{sweep}-learner.html")
    url_page.write_bytes(page.read_bytes())
    command_dom = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url_page.resolve().as_uri() + "#" + learner,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    section = re.search(
        rf'<section class="learner shown" id="{re.escape(learner)}">(.*?)</section>',
        command_dom,
        re.S,
    )
    assert section, f"learner page {learner} not shown"
    for field in ("points", "loss", "goal reached", "attempts", "elapsed (s)", "restored points"):
        assert f"<dt>{field}</dt>" in section.group(1)
    assert f"<dd>{state}</dd>" in section.group(1)


def test_report_of_a_finished_run(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS.replace("breaks", "smooth"))
    (workdir / "report_functions.py").write_text(FUNCTIONS)
    run_snakemake(workdir)
    # The pages are drawn when asked for (report_at_end: false), without rerunning anything.
    assert not (workdir / "results/report").exists()
    drawn = make_report(workdir)
    assert "rule learner" not in drawn.stderr and "localrule report_run" in drawn.stderr
    for name in ("summary.html", "timeline.png", "convergence.png", "sweeps/avg.png"):
        assert (workdir / "results/report" / name).stat().st_size > 0
    results = check_report(workdir, ["avg", "broken", "line"])
    check_sweep_page(workdir, results, "line", "line/a~2", "done")
    summary = embedded(results, "results/report/summary.html").decode()
    assert summary.count('<tr class="row"') == 4 and "not started" not in summary

    # A screenshot of the report showing a sweep page (the README's picture comes from here).
    shown = open_in_report(workdir / "report.html", "results/report/sweeps/line.html", "line")
    shot = tmp_path / "report.png"
    browse(shown, f"--screenshot={shot}", "--window-size=1280,800")
    assert shot.stat().st_size > 10_000


def test_report_of_a_half_finished_run(tmp_path):
    workdir = make_workdir(tmp_path, LEARNERS)
    (workdir / "report_functions.py").write_text(FUNCTIONS)
    # Only some learners: one done, one failing (its function raises), the rest not started.
    run = run_snakemake(
        workdir,
        "results/line/a~1/result.json",
        "results/broken/result.json",
        check=False,
    )
    assert run.returncode != 0  # broken fails
    assert (workdir / "state/broken.failed.json").exists()
    # Drawn from the current state, then collected: no learner runs.
    drawn = make_report(workdir, "--current")
    assert "rule learner" not in drawn.stderr and "localrule report_run" in drawn.stderr
    results = check_report(workdir, ["avg", "broken", "line"])
    summary = embedded(results, "results/report/summary.html").decode()
    assert "not started" in summary and "failed" in summary and ">done<" in summary
    check_sweep_page(workdir, results, "broken", "broken", "failed")
    # The report pages are redrawn on every call in current mode (the state moves on).
    again = run_snakemake(workdir, "report_pages", "--nolock", "--config", "report_from=current")
    assert "report_run" in again.stderr


def test_report_at_end_draws_the_pages_in_every_run(tmp_path):
    """config report_at_end: true puts the report's pages into the run itself (dry run: the
    plan), as they were before they became drawn on request."""
    workdir = make_workdir(tmp_path, LEARNERS)
    (workdir / "report_functions.py").write_text(FUNCTIONS)
    plain = run_snakemake(workdir, "-n")
    assert "report_run" not in plain.stdout and "plot_sweep" in plain.stdout
    at_end = run_snakemake(workdir, "-n", "--config", "report_at_end=True")
    assert "report_run" in at_end.stdout and "report_sweep" in at_end.stdout
