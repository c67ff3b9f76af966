"""Side by side with adaptive-scheduler 2.17.2 on the SLURM test cluster (issue 9).

    python benchmarks/vs_adaptive_scheduler.py            # 3 repetitions, on a quiet machine
    python benchmarks/vs_adaptive_scheduler.py --quick    # smoke run: 4 learners x 40 points, 1 rep

Workload W is adaptive-scheduler's README sweep: 20 Learner1D of h(x, pow, a) (pow 0-9 x a
0.1/0.5, bounds (-1, 1)), 200 points each, 10 ms per point, in a partition limited to
--cpus CPUs (ideal makespan 20 s on 2). Both tools run W with a process pool, 1 core per
learner, and with mpi4py, 2 cores per learner; ours once unpacked and once packed
(`pack:` learners x tasks / cpus, when this branch knows the key). Then one Learner1D of
2,000 points with 3 MPI ranks for both: theirs `cores=3` (manager + 2 workers, 3 CPUs, in
the cluster's default partition), ours `tasks: 2` (2 workers + the manager sharing a CPU, 2
CPUs held); 2 workers each, so the same ideal. Runs alternate between the tools (the
order flips every repetition), and the queue holds none of their jobs before the next
run. Ours uses profiles/slurm and the workflow of this branch as they are (only account and
partition are named).

Makespan: the first sbatch of the run (sacct Submit) to the moment the tool's command
returns (snakemake exits; adaptive-scheduler's RunManager task ends); "all done" ends
when the last learner reached its goal (ours: its "done" metrics record; theirs: its data
file, which the job writes at the end). Points are timed by the function itself (every
call appends its start and end to a file per job and process), the same for both tools:
job start -> first point is sacct Start to the job's first call (sacct has 1 s resolution,
+0.5 s on average for both); MPI efficiency is the ideal (points x 10 ms / 2 workers)
over first call to last return. adaptive-scheduler's own environment, benchmarks/.peer-venv,
is created on first use (about 40 s; --setup recreates it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _cluster import (
    clear_queue,
    done_time,
    ensure_cluster,
    ensure_partition,
    our_env,
    sacct_jobs,
    supports_pack,
    workflow_copy,
)

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_PINS = ["adaptive-scheduler==2.17.2", "mpi4py==4.1.2", "mpich==5.0.2"]
COST_S = 0.01
LOG_INTERVAL_S, SAVE_INTERVAL_S = 30, 300  # the same for both tools

FUNCTIONS = f'''
import os
import shutil
import time

_marks = None


def h(x, pow, a, cost={COST_S}):
    """adaptive-scheduler's README function with `cost` s of work; logs its own timing."""
    started = time.time()
    time.sleep(cost)
    _mark(started, time.time())
    return a * x**pow


def _mark(started, ended):
    global _marks
    if _marks is None:
        job = os.environ.get("SLURM_JOB_ID", "nojob")
        path = os.path.join(os.environ["BENCH_MARKS"], f"{{job}}-{{os.getpid()}}")
        _marks = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_marks, f"{{started:.6f}} {{ended:.6f}}\\n".encode())
'''

THEIRS = """
import asyncio
import functools
import json
import sys

import adaptive
from adaptive_scheduler.scheduler import SLURM
from adaptive_scheduler.server_support import RunManager

import bench_functions


async def main(cfg):
    learners = [
        adaptive.Learner1D(functools.partial(bench_functions.h, **combo), bounds=(-1, 1))
        for combo in cfg["combos"]
    ]
    fnames = [f"data/learner_{i}.pickle" for i in range(len(learners))]
    scheduler = SLURM(cores=cfg["cores"], executor_type=cfg["executor"], partition=cfg["partition"])
    points = cfg["points"]
    run_manager = RunManager(
        scheduler, learners, fnames, goal=lambda learner: learner.npoints >= points,
        log_interval=cfg["log_interval"], save_interval=cfg["save_interval"],
        job_name=cfg["job_name"], quiet=True,
    )
    run_manager.start()
    await run_manager.task
    run_manager.cancel()  # stops its database manager; no job is left by then


asyncio.run(main(json.loads(sys.argv[1])))
"""

OUR_SWEEP = """
sweeps:
  w:
    function: bench_functions:h
    learner: Learner1D
    learner_kwargs: {{bounds: [-1, 1]}}
    combos: {{pow: {pows}, a: {avalues}}}
    executor: {executor}
    tasks: {tasks}
    goal: {{npoints: {points}}}
    log_interval: {log_interval}
    save_interval: {save_interval}
    resources: {{runtime: 30, mem_mb: 1000}}
"""


@dataclass(frozen=True)
class Workload:
    name: str
    executor: str
    tasks: int  # theirs: cores; ours: tasks, unless our_tasks says otherwise
    pows: list[int]
    avalues: list[float]
    points: int
    partition: str
    our_tasks: int | None = None
    our_partition: str | None = None

    @property
    def learners(self) -> int:
        return len(self.pows) * len(self.avalues)

    def combos(self) -> list[dict]:
        return [{"pow": p, "a": a} for p in self.pows for a in self.avalues]


def ensure_peer_venv(force: bool) -> Path:
    """adaptive-scheduler in its own venv: never a dependency of the project."""
    python, stamp = PEER_VENV / "bin" / "python", PEER_VENV / "pins.txt"
    if force or not stamp.exists() or stamp.read_text().split() != PEER_PINS:
        print(f"installing {' '.join(PEER_PINS)} into {PEER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        done = subprocess.run([*pip, *PEER_PINS], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"pip install {' '.join(PEER_PINS)} failed:\n{done.stderr[-3000:]}")
        stamp.write_text("\n".join(PEER_PINS))
    return python


def run_ours(workdir: Path, w: Workload, pack: int | None, timeout: float) -> dict:
    workflow_copy(workdir, w.our_partition or w.partition)
    tasks = w.our_tasks or w.tasks
    sweep = OUR_SWEEP.format(
        pows=w.pows, avalues=w.avalues, executor=w.executor, tasks=tasks, points=w.points,
        log_interval=LOG_INTERVAL_S, save_interval=SAVE_INTERVAL_S,
    )  # fmt: skip
    if pack:
        sweep += f"    pack: {pack}\n"
    (workdir / "config" / "learners.yaml").write_text(sweep)
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm"]
    run = timed_run(command, workdir, our_env(BENCH_MARKS=str(workdir / "marks")), timeout)
    return {**run, "finals": [done_time(log) for log in workdir.glob("logs/learners/w/**/*.log")]}


def run_theirs(workdir: Path, w: Workload, python: Path, timeout: float) -> dict:
    workdir.mkdir(parents=True)
    (workdir / "theirs.py").write_text(THEIRS)
    cfg = {
        "combos": w.combos(), "cores": w.tasks, "executor": w.executor, "points": w.points,
        "partition": w.partition, "log_interval": LOG_INTERVAL_S,
        "save_interval": SAVE_INTERVAL_S, "job_name": f"as-{workdir.name}",
    }  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(workdir), BENCH_MARKS=str(workdir / "marks"))
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
    run = timed_run([str(python), "theirs.py", json.dumps(cfg)], workdir, env, timeout)
    finals = list(workdir.glob("data/learner_*.pickle"))
    return {**run, "finals": [p.stat().st_mtime for p in finals]}


def timed_run(command: list[str], workdir: Path, env: dict, timeout: float) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench_functions.py").write_text(FUNCTIONS)
    (workdir / "marks").mkdir()
    started = time.time()
    with open(workdir / "tool.log", "w") as log:
        try:
            proc = subprocess.run(
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout, start_new_session=True,
            )  # fmt: skip
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return {"started": started, "returned": time.time(), "exit": code}


def measure(workdir: Path, run: dict, w: Workload) -> dict:
    """What sacct and the function's own marks say about one finished run."""
    deadline = time.time() + 60
    while True:  # accounting records a job's end a moment after it left the queue
        jobs = sacct_jobs(workdir, run["started"])
        if (jobs and all(j["End"] for j in jobs)) or time.time() > deadline:
            break
        time.sleep(1)
    calls: dict[str, list[tuple[float, float]]] = {}
    for path in (workdir / "marks").iterdir():
        job = path.name.split("-")[0]
        for line in path.read_text().splitlines():
            start, end = map(float, line.split())
            calls.setdefault(job, []).append((start, end))
    first_submit = min((j["Submit"] for j in jobs if j["Submit"]), default=math.nan)
    first_points = [
        min(s for s, _ in calls[j["JobID"]]) - j["Start"]
        for j in jobs
        if j["JobID"] in calls and j["Start"]
    ]
    every = [c for job_calls in calls.values() for c in job_calls]
    span = max(e for _, e in every) - min(s for s, _ in every) if every else math.nan
    ok = run["exit"] == 0 and sum(not math.isnan(t) for t in run["finals"]) == w.learners
    return {
        "ok": ok,
        "exit": run["exit"],
        "jobs": len(jobs),
        "makespan": run["returned"] - first_submit,
        "all_done": max((t for t in run["finals"] if not math.isnan(t)), default=math.nan)
        - first_submit,
        "first_point": first_points,
        "points": len(every),
        "efficiency": w.points * w.learners * COST_S / 2 / span,  # 2 evaluating CPUs
    }


def run_one(root: Path, w: Workload, tool: str, rep: int, peer: Path, cpus: int, timeout: float):
    """One run of one tool on an empty queue; what it measured."""
    workdir = root / f"{w.name}-{tool}-{rep}".replace(" ", "-")
    others = clear_queue(root)
    if tool == "adaptive-scheduler":
        run = run_theirs(workdir, w, peer, timeout)
    else:
        pack = math.ceil(w.learners * w.tasks / cpus) if tool == "ours packed" else None
        run = run_ours(workdir, w, pack, timeout)
    clear_queue(root)
    measured = measure(workdir, run, w)
    return {"workload": w.name, "tool": tool, "rep": rep, **measured, "others_queued": others}


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def table_rows(runs: list[dict], workloads: list[Workload], ours_variants: list[str]) -> list:
    """(measure, theirs, ours, ratio ours/theirs, target) per row, medians of the runs."""

    def med(workload, tool, key):
        picked = [r for r in runs if r["workload"] == workload and r["tool"] == tool and r["ok"]]
        if key == "first_point":
            return median([v for r in picked for v in r[key]])
        return median([r[key] for r in picked])

    targets = {
        ("W process pool", "ours unpacked"): "<= 1.0",
        ("W process pool", "ours packed"): "<= 0.5",
        ("W mpi4py", "ours unpacked"): "<= 0.5",
        ("W mpi4py", "ours packed"): "<= 0.2",
    }
    rows = []
    for w in workloads:
        theirs = "adaptive-scheduler"
        if w.name == "MPI efficiency":
            t, o = med(w.name, theirs, "efficiency"), med(w.name, "ours unpacked", "efficiency")
            label = f"{w.name}, ideal / (first call to last return)"
            rows.append((label, t, o, o / t, ">= 0.92 abs"))
            continue
        for variant in ours_variants:
            for key, label, target in (
                ("makespan", "makespan (s)", targets[w.name, variant]),
                ("all_done", "all learners done (s)", ""),
                ("first_point", "job start -> first point (s)", "<= 2 s abs"),
            ):
                t, o = med(w.name, theirs, key), med(w.name, variant, key)
                rows.append((f"{w.name}, {variant}, {label}", t, o, o / t, target))
    return rows


def markdown(rows: list, header: str) -> str:
    lines = [header, "", "| measure | adaptive-scheduler | ours | ours/theirs | target |"]
    lines.append("|---|---|---|---|---|")
    lines += [f"| {m} | {t:.2f} | {o:.2f} | {r:.2f} | {g} |" for m, t, o, r, g in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 learners x 40 points, 1 rep")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the W partition")
    parser.add_argument("--setup", action="store_true", help="recreate benchmarks/.peer-venv")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    parser.add_argument("--only", help="run only workloads whose name contains this")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    peer = ensure_peer_venv(args.setup)
    ensure_cluster()
    partition = ensure_partition("bench", args.cpus)
    pows, avalues = (range(2), [0.1, 0.5]) if args.quick else (range(10), [0.1, 0.5])
    points, mpi_points = (40, 200) if args.quick else (200, 2000)
    workloads = [
        Workload("W process pool", "process-pool", 1, list(pows), avalues, points, partition),
        Workload("W mpi4py", "mpi4py", 2, list(pows), avalues, points, partition),
        # 3 ranks, 2 workers each: theirs needs 3 CPUs for them, ours holds 2.
        Workload("MPI efficiency", "mpi4py", 3, [1], [0.5], mpi_points, "debug", 2, partition),
    ]
    workloads = [w for w in workloads if args.only is None or args.only in w.name]
    variants = ["ours unpacked", "ours packed"] if supports_pack() else ["ours unpacked"]
    timeout = 300 if args.quick else 1200
    root = Path(tempfile.mkdtemp(prefix="vs-as-"))
    runs = []
    try:
        for rep in range(reps):
            for w in workloads:
                tools = ["adaptive-scheduler", *variants[: 1 if w.name == "MPI efficiency" else 2]]
                for tool in tools if rep % 2 == 0 else reversed(tools):
                    runs.append(run_one(root, w, tool, rep, peer, args.cpus, timeout))
                    print(
                        json.dumps({k: v for k, v in runs[-1].items() if k != "first_point"}),
                        flush=True,
                    )
    finally:
        clear_queue(root)
    rows = table_rows(runs, workloads, variants)
    mode = "quick" if args.quick else f"{reps} reps"
    header = (
        f"vs adaptive-scheduler 2.17.2, {time.strftime('%Y-%m-%d %H:%M')}, {mode}, "
        f"W on {args.cpus} CPUs, medians (failed runs: "
        f"{sum(not r['ok'] for r in runs)} of {len(runs)})"
    )
    text = markdown(rows, header)
    print(text)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    suffix = ("-quick" if args.quick else "") + (f"-{args.only}" if args.only else "")
    stem = results / f"vs_adaptive_scheduler{suffix.replace(' ', '-')}"
    stem.with_suffix(".md").write_text(text)
    data = {"header": header, "rows": rows, "runs": runs}
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1))
    print(f"written {stem}.md and .json")
    if args.keep:
        print(f"run directories in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
