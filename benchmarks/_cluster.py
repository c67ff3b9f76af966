"""What the cluster benchmarks share: a workflow copy for the test cluster, its jobs in
sacct/squeue, counting wrappers for SLURM commands and a peak-RSS sampler."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "adaptive"  # scripts/setup-test-slurm.sh
SACCT_FIELDS = ["JobID", "JobName", "WorkDir", "Submit", "Start", "End", "State", "AllocCPUS"]


def ensure_cluster() -> None:
    """Stand up (or just check) the test cluster: idempotent, about a second when up."""
    subprocess.run(["bash", str(REPO / "scripts" / "setup-test-slurm.sh")], check=True)


def ensure_partition(name: str, cpus: int) -> str:
    """A partition of the test node limited to `cpus` CPUs (the node declares more CPUs
    than the machine has cores); created at run time, gone when slurmctld restarts."""
    shown = subprocess.run(["scontrol", "show", "partition", name], capture_output=True)
    if shown.returncode != 0:
        node = subprocess.run(
            ["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        subprocess.run(
            ["scontrol", "create", f"PartitionName={name}", f"Nodes={node}",
             f"MaxCPUsPerNode={cpus}", "MaxTime=UNLIMITED", "State=UP"],
            check=True,
        )  # fmt: skip
    return name


def workflow_copy(workdir: Path, partition: str) -> Path:
    """This branch's workflow, profiles and config, naming the test account and partition
    in profiles/slurm as the README tells users to; nothing else is changed."""
    for name in ("workflow", "profiles", "config"):
        shutil.copytree(REPO / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    profile = workdir / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_account", ACCOUNT), ("slurm_partition", partition)):
        text, found = re.subn(rf"^(\s*)#\s*{key}: .*$", rf'\1{key}: "{value}"', text, flags=re.M)
        if found != 1:
            sys.exit(f"profiles/slurm/config.yaml has no commented {key} example")
    profile.write_text(text)
    return workdir


def our_env(**extra: str) -> dict[str, str]:
    """Environment of our runs: this interpreter's venv first on PATH (jobs run `python`
    and inherit it), this worktree's source first on PYTHONPATH."""
    env = dict(os.environ, **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def supports_pack() -> bool:
    """Whether this branch's learners.yaml schema knows the `pack` key yet."""
    schema = REPO / "src" / "adaptive_snakemake" / "specs" / "schemas" / "learners.schema.yaml"
    return re.search(r"^\s+pack:", schema.read_text(), re.M) is not None


def parse_time(value: str) -> float | None:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None  # Unknown, None: not started or not ended


def sacct_jobs(under: Path, since: float) -> list[dict]:
    """Allocation rows of every job submitted since `since` whose working directory is
    `under` or below it; Submit/Start/End as unix seconds (SLURM's 1 s resolution)."""
    start = datetime.fromtimestamp(since - 60).strftime("%Y-%m-%dT%H:%M:%S")
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", start, "-o", ",".join(SACCT_FIELDS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    root = os.path.realpath(under)
    rows = []
    for line in out.splitlines():
        row = dict(zip(SACCT_FIELDS, line.split("|"), strict=True))
        if os.path.realpath(row["WorkDir"]).startswith(root):
            for key in ("Submit", "Start", "End"):
                row[key] = parse_time(row[key])
            rows.append(row)
    return rows


def done_time(log: Path) -> float:
    """When the learner reached its goal: the `t` of its "done" metrics record. (Snakemake
    touches results/ on the login node when it notices the job ended.)"""
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{") and json.loads(line).get("status") == "done":
            return json.loads(line)["t"]
    return math.nan


def our_queued_jobs(under: Path) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True, check=True
    ).stdout
    root = os.path.realpath(under)
    return [
        job
        for job, _, workdir in (line.partition("|") for line in out.splitlines())
        if os.path.realpath(workdir).startswith(root)
    ]


def clear_queue(under: Path, timeout: float = 120) -> int:
    """scancel every job left below `under`, wait until squeue shows none; returns how many
    jobs of others are queued (noise on a shared machine)."""
    deadline = time.monotonic() + timeout
    while jobs := our_queued_jobs(under):
        if time.monotonic() > deadline:
            sys.exit(f"jobs {jobs} did not leave the queue in {timeout} s")
        subprocess.run(["scancel", *jobs], check=False)
        time.sleep(1)
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return len(out.split())


def counting_wrappers(bindir: Path, commands: list[str], counts: Path) -> str:
    """Scripts named like `commands` in `bindir` that append their name (and "in jobs" when
    run inside a SLURM job) to `counts` and exec the real binary; returns a PATH with
    `bindir` first (jobs inherit it)."""
    bindir.mkdir(parents=True, exist_ok=True)
    for command in commands:
        real = shutil.which(command)
        if real is None:
            sys.exit(f"{command} is not on PATH")
        wrapper = bindir / command
        where = "${SLURM_JOB_ID:+_in_jobs}"
        wrapper.write_text(f'#!/bin/sh\necho {command}{where} >> "{counts}"\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    return f"{bindir}{os.pathsep}{os.environ['PATH']}"


def count_calls(counts: Path) -> dict[str, int]:
    names = counts.read_text().split() if counts.exists() else []
    return {name.replace("_", " "): names.count(name) for name in sorted(set(names))}


class PeakRss:
    """Samples, every `interval` s, the summed RSS of a process tree plus any process whose
    command line matches `also` (e.g. a collector started in its own session)."""

    def __init__(self, pid: int, also: str | None = None, interval: float = 0.2):
        self.pid, self.also, self.interval = pid, also, interval
        self.peak_mb = 0.0  # the tree (and matches) together
        self.root_peak_mb = 0.0  # the process alone
        self.service_peak_mb = 0.0  # the process and the `also` matches (not its children)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            found = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            found = {}
        if self.also:
            for proc in psutil.process_iter(["cmdline"]):
                if self.also in " ".join(proc.info["cmdline"] or ()):
                    found.setdefault(proc.pid, proc)
        return list(found.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            total = service = 0
            for proc in self._processes():
                try:
                    rss = proc.memory_info().rss
                    cmdline = " ".join(proc.cmdline()) if self.also else ""
                except psutil.Error:
                    continue
                total += rss
                if proc.pid == self.pid:
                    self.root_peak_mb = max(self.root_peak_mb, rss / 2**20)
                if proc.pid == self.pid or (self.also and self.also in cmdline):
                    service += rss
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self.service_peak_mb = max(self.service_peak_mb, service / 2**20)
            self._stop.wait(self.interval)
