"""Running the real workflow in a throw-away copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ["workflow", "profiles", "examples", "config"]


def make_workdir(tmp_path: Path, learners: str | None = None) -> Path:
    """A copy of the workflow in tmp_path/wf; `learners` replaces config/learners.yaml."""
    workdir = tmp_path / "wf"
    for name in COPIED:
        shutil.copytree(REPO / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    if learners is not None:
        (workdir / "config" / "learners.yaml").write_text(textwrap.dedent(learners))
    return workdir


def environment() -> dict:
    env = dict(os.environ)
    # Jobs run `python`: the one of this test run, with adaptive_snakemake installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 600):
    result = subprocess.run(
        snakemake_command(*args),
        cwd=workdir,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-6000:]}"
        )
    return result


def start_snakemake(workdir: Path, *args: str, log_name: str = "snakemake.out") -> subprocess.Popen:
    """Snakemake in the background, in its own process group (so a test can kill all of it)."""
    out = open(workdir / log_name, "w")
    return subprocess.Popen(
        snakemake_command(*args),
        cwd=workdir,
        env=environment(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read_result(workdir: Path, name: str) -> dict:
    return json.loads((workdir / "results" / name / "result.json").read_text())


def checkpoint_npoints(workdir: Path, name: str) -> int:
    meta = workdir / "state" / f"{name}.json"
    if not (workdir / "state" / f"{name}.pickle").exists() or not meta.exists():
        return 0
    try:
        return json.loads(meta.read_text())["npoints"]
    except (ValueError, KeyError):
        return 0


def wait_for(condition, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
