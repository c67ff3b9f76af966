"""10,000 small learners through profiles/slurm on the SLURM test cluster (issue 9, point 4).

    python benchmarks/scale_10k.py                    # everything, on a quiet machine
    python benchmarks/scale_10k.py --learners 200     # smoke run of the cluster part
    python benchmarks/scale_10k.py --only dry-run     # only `snakemake -n` (10k, 100k, trivial)

Parts, in this order (each can be picked with --only):
  dry-run  `snakemake -n` of --learners and of 100,000 learners, one job per learner and
           packed (pack: 100), time and peak RSS, against a trivial Snakefile of as many
           targets (benchmarks/dag_parse.py's).
  cluster  --learners learners (20 points of a 1 ms function each), packed into at most
           --jobs SLURM jobs, to their goals with `snakemake --profile profiles/slurm` as
           this branch ships it: makespan; jobs submitted; sbatch, sacct, squeue, scontrol,
           sacctmgr and srun calls (wrappers first on PATH count them, on the login node
           and inside jobs); peak RSS of snakemake and the collector (sampled every 0.2 s);
           files and bytes written per learner.
  fs-ops   one long-running learner (10 ms points, 930 s duration goal, default intervals)
           under `strace -f`: file-system operations on the workflow directory per hour,
           by kind (lock heartbeat, checkpoint, bookkeeping, logs).
Results: printed, and written to benchmarks/results/scale_10k[-<learners>].json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _cluster import (
    PeakRss,
    clear_queue,
    count_calls,
    counting_wrappers,
    done_time,
    ensure_cluster,
    our_env,
    sacct_jobs,
    supports_pack,
    workflow_copy,
)
from dag_parse import TRIVIAL

HERE = Path(__file__).resolve().parent
CALL = re.compile(r"\d+\s+[\d.]+ (\w+)\(")  # a line of strace -f -ttt: pid, time, call
COUNTED = ["sbatch", "sacct", "squeue", "scontrol", "sacctmgr", "srun"]
# `snakemake -n` is also timed with the sweep packed, as a sweep of this size would run.
DRY_RUN_PACK = 100
FUNCTIONS = '''
import time


def f(x, offset, width, cost=0.001):
    """A Lorentzian peak, `cost` seconds of work per point."""
    time.sleep(cost)
    return x + width**2 / (width**2 + (x - offset) ** 2)
'''


def sweep_yaml(learners: int, extra: str = "") -> str:
    """One sweep of `learners` learners: a grid of up to 100 offsets x the rest widths."""
    offsets = min(100, learners)
    if learners % offsets:
        sys.exit("use a multiple of 100 learners (or fewer than 100)")
    widths = learners // offsets
    grid = {
        "offset": [round(-1 + 2 * i / offsets, 6) for i in range(offsets)],
        "width": [round(0.001 * (i + 1), 6) for i in range(widths)],
    }
    return (
        "sweeps:\n  s:\n    function: scale_functions:f\n    learner: Learner1D\n"
        f"    learner_kwargs: {{bounds: [-1, 1]}}\n    combos: {json.dumps(grid)}\n{extra}"
    )


def workdir_for(root: Path, name: str, sweep: str) -> Path:
    workdir = workflow_copy(root / name, "debug")
    (workdir / "config" / "learners.yaml").write_text(sweep)
    (workdir / "scale_functions.py").write_text(FUNCTIONS)
    return workdir


def timed_peak(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MB of the process and the children it waited for)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def dry_runs(root: Path, learners: int) -> dict:
    """`snakemake -n` as benchmarks/dag_parse.py runs it, ours at `learners` and 100,000."""
    command = [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2", "--quiet", "all"]
    trivial = root / "trivial"
    trivial.mkdir()
    (trivial / "Snakefile").write_text(TRIVIAL)
    results = {}
    for n in sorted({learners, 100_000}):
        for pack in (None, DRY_RUN_PACK):  # one job per learner; packed, as at scale
            extra = "    executor: process-pool\n    tasks: 1\n"
            extra += f"    pack: {pack}\n" if pack else ""
            label = f"ours {n}" + (f" pack {pack}" if pack else "")
            workdir = workdir_for(root, f"dry-{n}-{pack}", sweep_yaml(n, extra))
            ours = [*command, "--workflow-profile", "none"]
            results[label] = timed_peak(ours, workdir, our_env())
            print(f"snakemake -n, {label}: {results[label]}", flush=True)
    config = ["--config", f"targets={learners}"]
    results[f"trivial {learners}"] = timed_peak([*command, *config], trivial)
    trivial_s = results[f"trivial {learners}"][0]
    results["ratio"] = results[f"ours {learners}"][0] / trivial_s
    results["ratio packed"] = results[f"ours {learners} pack {DRY_RUN_PACK}"][0] / trivial_s
    return results


def cluster_run(root: Path, learners: int, jobs: int, timeout: float) -> dict:
    pack = math.ceil(learners / jobs)
    extra = "    executor: process-pool\n    tasks: 2\n    goal: {npoints: 20}\n"
    if supports_pack():
        extra += f"    pack: {pack}\n"
    elif learners > 500:
        sys.exit("this branch has no `pack:` yet; run --learners 200 (unpacked) meanwhile")
    workdir = workdir_for(root, "cluster", sweep_yaml(learners, extra))
    counts = root / "calls.txt"
    env = our_env()
    env["PATH"] = counting_wrappers(root / "bin", COUNTED, counts) + os.pathsep + env["PATH"]
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm"]
    started = time.time()
    with open(workdir / "snakemake.log", "w") as log:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
        with PeakRss(proc.pid, also=f"collector --workdir {workdir}") as rss:
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                code = f"timeout after {timeout} s"
    makespan = time.time() - started
    clear_queue(workdir)
    written = Counter()
    for top in ("results", "state", "logs", ".snakemake"):
        for path in (workdir / top).rglob("*"):
            if path.is_file():
                written[f"{top} files"] += 1
                written[f"{top} bytes"] += path.stat().st_size
    finals = [done_time(log) for log in workdir.glob("logs/learners/s/**/*.log")]
    return {
        "learners": learners,
        "pack": pack if supports_pack() else None,
        "exit": code,
        "learners done": sum(not math.isnan(t) for t in finals),
        "makespan s": round(makespan, 1),
        "last learner done after s": round(
            max((t for t in finals if not math.isnan(t)), default=math.nan) - started, 1
        ),
        "SLURM jobs": len(sacct_jobs(workdir, started)),
        "calls": count_calls(counts),
        "login peak RSS MB, snakemake + collector + local rules": round(rss.peak_mb),
        "login peak RSS MB, snakemake + collector": round(rss.service_peak_mb),
        "login peak RSS MB, snakemake alone": round(rss.root_peak_mb),
        "per learner": {k: round(v / learners, 1) for k, v in sorted(written.items())},
    }


def fs_ops(root: Path, seconds: float) -> dict:
    """strace of one learner job (not snakemake) over `seconds`: operations on the workflow
    directory per hour of running, by kind; the first and last 5 s (start, save) apart."""
    from adaptive_snakemake.layout import LearnerFiles
    from adaptive_snakemake.specs.parse import load_specs

    extra = (
        "    fixed: {cost: 0.01}\n    executor: process-pool\n    tasks: 1\n"
        f"    goal: {{duration: {seconds}}}\n"
    )
    workdir = workdir_for(root, "traced", sweep_yaml(1, extra))
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    (spec,) = load_specs("config/learners.yaml", max_learners=1)
    files = LearnerFiles.of(spec.name, workdir)
    job = [sys.executable, "-m", "adaptive_snakemake.job", "--spec", str(spec),
           "--checkpoint", str(files.checkpoint), "--learner-pickle", str(files.learner_pickle),
           "--result", str(files.result), "--log", str(files.log)]  # fmt: skip
    trace = root / "strace.txt"
    strace = ["strace", "-f", "-ttt", "-y", "-o", str(trace),
              "-e", "trace=%file,%desc,fsync,fdatasync", "-e", "signal=none"]  # fmt: skip
    files.log.parent.mkdir(parents=True, exist_ok=True)
    env = our_env(ADAPTIVE_SNAKEMAKE_MONITOR="off")
    with open(files.log, "ab") as log:
        subprocess.run([*strace, *job], cwd=workdir, env=env, stdout=log, stderr=log, check=True)
    # A path under the workflow directory, as an argument or as an fd's path (strace -y);
    # the directory every *at() call names as its base does not count.
    ours = re.compile(
        rf'"(?:{re.escape(str(workdir))}/)?(?:state|logs|results)/|<{re.escape(str(workdir))}/'
    )
    ops = [
        (float(line.split()[1]), line) for line in trace.read_text().splitlines()
        if CALL.match(line) and ours.search(line)
    ]  # fmt: skip
    first, last = ops[0][0], ops[-1][0]
    steady = [line for t, line in ops if first + 5 < t < last - 5]
    kinds = Counter(op_kind(line) for line in steady)
    hours = (last - first - 10) / 3600
    return {
        "seconds traced": round(last - first),
        "ops in total": len(ops),
        "steady ops per learner-hour": {k: round(v / hours) for k, v in kinds.most_common()},
        "steady ops per learner-hour, all": round(len(steady) / hours),
    }


def op_kind(line: str) -> str:
    """What a traced operation on the workflow directory belongs to, by path and call."""
    call = CALL.match(line).group(1)
    for pattern, kind in (
        (r"\.lock", "lock"),
        (r"state/.*\.pickle", "checkpoint"),
        (r"state/", "bookkeeping"),
        (r"logs/", "log"),
        (r"results/", "results"),
    ):
        if re.search(pattern, line):
            return f"{kind} {call}"
    return f"other {call}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--learners", type=int, default=10_000)
    # 200 (the limit): pack 50 at 10,000 learners. A pack's command holds every
    # member's spec (~0.7 kB each), and .snakemake/metadata keeps it for every output.
    parser.add_argument("--jobs", type=int, default=200, help="pack so that at most this many jobs")
    # Three checkpoints (save_interval 300 s) inside the steady window.
    parser.add_argument("--trace-seconds", type=float, default=930)
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    parser.add_argument("--only", choices=["dry-run", "cluster", "fs-ops"])
    args = parser.parse_args()
    parts = [args.only] if args.only else ["dry-run", "cluster", "fs-ops"]
    root = Path(tempfile.mkdtemp(prefix="scale-"))
    report = {"learners": args.learners}
    if "dry-run" in parts:
        report["snakemake -n (s, MB)"] = dry_runs(root, args.learners)
    if "cluster" in parts:
        ensure_cluster()
        try:
            report["cluster run"] = cluster_run(root, args.learners, args.jobs, args.timeout)
        finally:
            clear_queue(root)
    if "fs-ops" in parts:
        report["file-system operations"] = fs_ops(root, args.trace_seconds)
    text = json.dumps(report, indent=1)
    print(text)
    suffix = "" if args.learners == 10_000 and not args.only else f"-{args.only or args.learners}"
    out = HERE / "results" / f"scale_10k{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"written {out}; run directories in {root}")


if __name__ == "__main__":
    main()
