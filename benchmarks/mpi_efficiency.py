"""MPI efficiency inside one learner job, in the layout the workflow uses: a job that holds
2 CPUs runs 3 ranks (2 workers + the manager, which shares a CPU with a worker).

One Learner1D, 2,000 points x 10 ms (`--points`, `--cost`), `executor: mpi4py, tasks: 2`, run
as the real learner job (`python -m mpi4py.futures -m adaptive_snakemake.job`):
  - on the SLURM test cluster (default): `sbatch --ntasks=2 --cpus-per-task=1` and, inside,
    `srun --mpi=pmi2 --kill-on-bad-exit=1 --overcommit -n 3`, as profiles/slurm does;
  - with --local: `mpiexec -n 3` on this machine (no other load assumed).
Efficiency = ideal / runner time, ideal = points x cost / 2 workers (10 s), runner time = the
result's `elapsed`; rank 0's CPU % is what the manager (and the runner) take from the worker
that shares its CPU. Each ADAPTIVE_SNAKEMAKE_MPI_BACKOFF variant (the longest sleep between two
polls) is given to every rank (unset: the job's own choice, mpi_pool.MAX_BACKOFF_S).

    PYTHONPATH=src .venv/bin/python benchmarks/mpi_efficiency.py [--repeat 2] [--local]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKERS = 2
SRUN = "srun --mpi=pmi2 --kill-on-bad-exit=1 --overcommit"
# None: the environment variable unset: the job's own choice (mpi_pool.MAX_BACKOFF_S, 1e-4),
# for every rank; 0.001 is mpi4py.futures' default.
BACKOFFS = (None, "0.001", "0.00001")


def job_command(workdir: Path, points: int, cost: float) -> list[str]:
    from adaptive_snakemake.layout import LearnerFiles
    from adaptive_snakemake.specs.parse import load_specs

    learners = workdir / "config" / "learners.yaml"
    learners.parent.mkdir(parents=True)
    learners.write_text(
        textwrap.dedent(
            f"""
            sweeps:
              s:
                function: examples.functions:peak
                learner: Learner1D
                learner_kwargs: {{bounds: [-1, 1]}}
                executor: mpi4py
                tasks: {WORKERS}
                goal: {{npoints: {points}}}
                save_interval: 600
                log_interval: 1
                fixed: {{cost: {cost}}}
            """
        )
    )
    (workdir / "examples").symlink_to(REPO / "examples")
    (spec,) = load_specs(learners)
    files = LearnerFiles.of("s")
    return [
        sys.executable,
        "-m",
        "adaptive_snakemake.job.mpi_pool",
        "-m",
        "adaptive_snakemake.job",
        "--spec",
        str(spec),
        "--checkpoint",
        str(files.checkpoint),
        "--learner-pickle",
        str(files.learner_pickle),
        "--result",
        str(files.result),
        "--log",
        "learner.log",
    ]


def manager_cpu(log: Path) -> float:
    """Median CPU % of rank 0 (the runner and mpi4py's manager) over the run's metrics records:
    what it takes from the worker that shares its CPU. Little affected by other load."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    running = [r["cpu"] for r in records if r.get("status") == "running" and r.get("npoints")]
    return statistics.median(running) if running else float("nan")


def run_once(backoff: str | None, points: int, cost: float, local: bool) -> tuple[float, float]:
    scratch = REPO / ".snakemake"  # ignored by git; on a cluster, a shared file system
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mpi-efficiency-", dir=scratch) as tmp:
        workdir = Path(tmp)
        command = job_command(workdir, points, cost)
        env = dict(os.environ, ADAPTIVE_SNAKEMAKE_MONITOR="off")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env.pop("ADAPTIVE_SNAKEMAKE_MPI_BACKOFF", None)
        if backoff is not None:
            env["ADAPTIVE_SNAKEMAKE_MPI_BACKOFF"] = backoff
        ranks = WORKERS + 1
        if local:
            launch = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), *command]
        else:
            inner = f"{SRUN} -n {ranks} {shlex.join(command)} > job.log 2>&1"
            launch = [
                "sbatch",
                "--wait",
                "--quiet",
                f"--ntasks={WORKERS}",
                "--cpus-per-task=1",
                "--export=ALL",
                "-o",
                "sbatch.log",
                f"--wrap={inner}",
            ]
        subprocess.run(launch, cwd=workdir, env=env, check=True, timeout=600)
        result = json.loads((workdir / "results" / "s" / "result.json").read_text())
        assert result["npoints"] >= points, result
        return result["elapsed"], manager_cpu(workdir / "learner.log")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--cost", type=float, default=0.01)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args()
    ideal = args.points * args.cost / WORKERS
    print(f"load average before: {os.getloadavg()}")
    times: dict[str | None, list[float]] = {backoff: [] for backoff in BACKOFFS}
    cpu: dict[str | None, list[float]] = {backoff: [] for backoff in BACKOFFS}
    for _ in range(args.repeat):  # alternating variants: the machine's load hits them alike
        for backoff in BACKOFFS:
            elapsed, manager = run_once(backoff, args.points, args.cost, args.local)
            times[backoff].append(elapsed)
            cpu[backoff].append(manager)
    where = "mpiexec, this machine" if args.local else "SLURM, 2 CPUs held, srun --overcommit"
    print(f"3 ranks ({WORKERS} workers + manager), {args.points} points x {args.cost} s, {where}")
    print(
        f"{'ADAPTIVE_SNAKEMAKE_MPI_BACKOFF':<32}{'runner time (s)':<24}{'efficiency':<12}"
        f"rank 0 CPU % (median; ideal {ideal:g} s)"
    )
    for backoff, elapsed in times.items():
        median = statistics.median(elapsed)
        shown = " ".join(f"{t:.2f}" for t in elapsed)
        manager = statistics.median(cpu[backoff])
        print(
            f"{backoff or 'unset (job default)':<32}{shown:<24}{ideal / median:<12.3f}{manager:.0f}"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
