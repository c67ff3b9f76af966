"""Sweeps with `pack: N`: N learners per job, each still a target with its own files; stable
packs, so that new learners and changed goals rerun exactly what they concern."""

import json
import os
import re
import signal

import psutil
import pytest

from tests.workflow_helpers import (
    checkpoint_npoints,
    make_workdir,
    read_result,
    run_snakemake,
    start_snakemake,
    wait_for,
)

pytestmark = pytest.mark.workflow

LEARNERS = """
defaults:
  function: examples.functions:peak
  learner: Learner1D
  learner_kwargs: {bounds: [-1, 1]}
  save_interval: 1
  log_interval: 1
  fixed: {cost: 0.002}
sweeps:
  packed:
    executor: process-pool
    tasks: 2
    pack: 2
    goal: {npoints: PACKED_GOAL}
    combos: {offset: [OFFSETS]}
  alone:
    executor: sequential
    tasks: 1
    PACK_ALONE
    goal: {npoints: 30}
    combos: {offset: [0.0]}
"""


def _learners(offsets="-0.5, 0.5, 0.9", packed_goal=40, pack_alone=""):
    return (
        LEARNERS.replace("OFFSETS", offsets)
        .replace("PACKED_GOAL", str(packed_goal))
        .replace("PACK_ALONE", pack_alone)
    )


def _jobs(output: str) -> dict[str, int]:
    """The job counts per rule of a dry run's "Job stats" table (learner jobs only)."""
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(pack_\w+|learner\w*)\s+(\d+)$", output, re.M)
    }


# The learners and their summary; the pictures and report pages are tested elsewhere.
TARGET = "results/summary.csv"


def _stamps(workdir, names):
    return {name: os.stat(workdir / "results" / name / "result.json").st_mtime_ns for name in names}


PACKED = ["packed/offset~-0.5", "packed/offset~0.5", "packed/offset~0.9"]


def test_packs_reach_every_goal_and_rerun_exactly_what_changed(tmp_path):
    workdir = make_workdir(tmp_path, _learners())
    dry = run_snakemake(workdir, "-n", TARGET)
    assert _jobs(dry.stdout) == {"pack_packed_0": 1, "pack_packed_1": 1, "learner": 1}
    # A pack's command names its specs file (Snakemake stores the command with every output)
    assert (
        "--specs-file state/.packs/packed.0.specs.json"
        " --pack-results results/.packs/packed.0.json --checkpoint"
    ) in dry.stdout
    assert '"name":"packed/offset~0.5"' not in dry.stdout
    assert not (workdir / "state").exists(), "a dry run writes nothing, not even the packs"
    run_snakemake(workdir, TARGET)
    for name in PACKED:
        result = read_result(workdir, name)
        assert result["npoints"] >= 40 and result["attempts"] == 1
        assert (workdir / "results" / name / "learner.pickle").exists()
        assert (
            f"{name}: goal npoints reached"
            in (workdir / "logs" / "learners" / f"{name}.log").read_text()
        )
    summary = (workdir / "results" / "summary.csv").read_text()
    assert all(name in summary for name in PACKED)
    # The summary reads a pack's results together: the same as its learners' result.json.
    pack_results = json.loads((workdir / "results" / ".packs" / "packed.0.json").read_text())
    assert pack_results == [read_result(workdir, name) for name in PACKED[:2]]
    assert (
        "packed/offset~-0.5: attempt 1" in (workdir / "logs" / "packs" / "packed.0.log").read_text()
    )
    finished = _stamps(workdir, [*PACKED, "alone/offset~0.0"])

    # A new grid value, in the middle of the order: one new pack, nothing else reruns.
    (workdir / "config" / "learners.yaml").write_text(_learners("-0.5, 0.0, 0.5, 0.9"))
    assert _jobs(run_snakemake(workdir, "-n", TARGET).stdout) == {"pack_packed_2": 1}
    run_snakemake(workdir, TARGET)
    assert read_result(workdir, "packed/offset~0.0")["npoints"] >= 40
    assert _stamps(workdir, finished) == finished

    # Packing a finished sweep computes none of it: its pack's job has a results file to
    # write (its only missing output) and rewrites its learner's results from the checkpoint.
    packs_on = _learners("-0.5, 0.0, 0.5, 0.9", pack_alone="pack: 3")
    (workdir / "config" / "learners.yaml").write_text(packs_on)
    alone = read_result(workdir, "alone/offset~0.0")
    dry = run_snakemake(workdir, "-n", TARGET)
    assert _jobs(dry.stdout) == {"pack_alone_0": 1}, dry.stdout
    assert "Missing output files: results/.packs/alone.0.json" in dry.stdout
    run_snakemake(workdir, TARGET)
    repacked = read_result(workdir, "alone/offset~0.0")
    assert repacked["npoints"] == alone["npoints"] == repacked["restored_npoints"]
    assert _jobs(run_snakemake(workdir, "-n", TARGET).stdout) == {}
    finished["alone/offset~0.0"] = _stamps(workdir, ["alone/offset~0.0"])["alone/offset~0.0"]

    # A raised goal of the packed sweep reruns its packs only; they continue their data.
    raised = _learners("-0.5, 0.0, 0.5, 0.9", packed_goal=60, pack_alone="pack: 3")
    (workdir / "config" / "learners.yaml").write_text(raised)
    assert _jobs(run_snakemake(workdir, "-n", TARGET).stdout) == {
        "pack_packed_0": 1,
        "pack_packed_1": 1,
        "pack_packed_2": 1,
    }
    run_snakemake(workdir, TARGET)
    for name in PACKED:
        result = read_result(workdir, name)
        assert result["npoints"] >= 60 and result["restored_npoints"] >= 40
    assert _stamps(workdir, ["alone/offset~0.0"]) == {
        "alone/offset~0.0": finished["alone/offset~0.0"]
    }


SLOW_PACK = """
sweeps:
  slow:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    executor: process-pool
    tasks: 2
    pack: 2
    goal: {npoints: 300}
    save_interval: 1
    log_interval: 1
    combos: {offset: [-0.5, 0.5]}
    fixed: {cost: 0.02}
"""
SLOW = ["slow/offset~-0.5", "slow/offset~0.5"]


def _pack_job():
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "adaptive_snakemake.job" in cmdline and "results/slow/offset~0.5/result.json" in cmdline:
            return process
    return None


def test_killed_pack_job_is_retried_and_every_learner_resumes(tmp_path):
    workdir = make_workdir(tmp_path, SLOW_PACK)
    run = start_snakemake(workdir, TARGET)
    try:
        wait_for(
            lambda: all(checkpoint_npoints(workdir, name) >= 20 for name in SLOW),
            120,
            "both learners' checkpoints",
        )
        job = wait_for(_pack_job, 30, "the pack's job")
        victims = [job, *job.children(recursive=True)]  # the job and its pool workers
        for process in victims:
            process.send_signal(signal.SIGKILL)
        assert run.wait(timeout=300) == 0, (workdir / "snakemake.out").read_text()[-4000:]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    for name in SLOW:
        result = read_result(workdir, name)
        assert result["attempts"] == 2
        assert result["restored_npoints"] >= 20
        assert result["npoints"] >= 300
