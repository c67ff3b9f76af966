"""What the SLURM profile adds around short learners: makespan, the wait between the last
job's end and snakemake's exit, and the SLURM commands the main snakemake process runs.

Runs 2 short process-pool learners (1 CPU each) through `snakemake --profile profiles/slurm`
on the test cluster (scripts/setup-test-slurm.sh), in a throw-away copy of the workflow
with the test cluster's account and partition set (as the README tells users to). Every
SLURM command goes through a counting wrapper placed first on PATH that logs its call and
execs the real binary; calls made inside jobs (SLURM_JOB_ID set) are counted apart.

    PYTHONPATH=src .venv/bin/python benchmarks/slurm_profile_overhead.py [--repeat 2]
        [--learners-only] [-- EXTRA SNAKEMAKE ARGS, e.g.
        --slurm-init-seconds-before-status-checks 40]

--learners-only: the learners' results as the targets, without the summary, pictures and
report that run on the login node after them (the end wait is then the profile's alone).

`end wait` = snakemake's exit - the last job's End in sacct (1 s resolution).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.slurm_calls import counting_path, read_calls  # noqa: E402
from tests.workflow_helpers import environment, make_workdir, snakemake_command  # noqa: E402

LEARNERS = """
defaults:
  executor: process-pool
  tasks: 1
  goal: {npoints: 100}
  save_interval: 60
  log_interval: 5
  resources: {runtime: 10, mem_mb: 500}
sweeps:
  short:
    function: examples.functions:peak
    learner: Learner1D
    learner_kwargs: {bounds: [-1, 1]}
    combos: {offset: [0.0, 0.5]}
    fixed: {cost: 0.01}
"""


# --learners-only: just the learners, without the summary, pictures and report that run on
# the login node after them: the end wait is then the profile's alone.
TARGETS = ("results/short/offset~0.0/result.json", "results/short/offset~0.5/result.json")


def configure_profile(workdir: Path, account: str, partition: str) -> None:
    profile = workdir / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_account", account), ("slurm_partition", partition)):
        text = re.sub(rf"^  #   {key}: .*$", f'  {key}: "{value}"', text, flags=re.M)
    profile.write_text(text)


def job_ends(output: str) -> list[float]:
    ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "End"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S")) for end in out]


def run_once(extra: list[str], account: str, partition: str, learners_only: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="profile-overhead-") as tmp:
        workdir = make_workdir(Path(tmp), LEARNERS)
        configure_profile(workdir, account, partition)
        log = Path(tmp) / "calls.log"
        env = environment()
        env["PATH"] = counting_path(Path(tmp) / "bin", log, env["PATH"])
        started = time.time()
        result = subprocess.run(
            snakemake_command(
                "--profile", "profiles/slurm", *extra, *(TARGETS if learners_only else ())
            ),
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        exited = time.time()
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise SystemExit(f"snakemake failed:\n{output[-4000:]}")
        counts = {}
        for _, where, command in read_calls(log):
            name = " ".join(command.split()[: 3 if command.startswith("scontrol") else 1])
            counts[f"{where}:{name}"] = counts.get(f"{where}:{name}", 0) + 1
        if os.environ.get("SHOW_LOG"):
            print(output[-6000:], log.read_text(), sep="\n")
        ends = job_ends(output)
        return {
            "makespan": exited - started,
            "end_wait": exited - max(ends),
            "jobs": len(ends),
            "counts": counts,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--account", default="adaptive")
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--learners-only", action="store_true")
    parser.add_argument("extra", nargs="*", help="extra snakemake arguments (after --)")
    args = parser.parse_args()
    runs = [
        run_once(args.extra, args.account, args.partition, args.learners_only)
        for _ in range(args.repeat)
    ]
    for run in runs:
        print(
            f"makespan {run['makespan']:.1f} s  end wait {run['end_wait']:.1f} s  "
            f"jobs {run['jobs']}  calls {dict(sorted(run['counts'].items()))}"
        )
    print(
        f"median makespan {statistics.median(r['makespan'] for r in runs):.1f} s, "
        f"median end wait {statistics.median(r['end_wait'] for r in runs):.1f} s "
        f"(extra args: {' '.join(args.extra) or 'none'})"
    )


if __name__ == "__main__":
    main()
