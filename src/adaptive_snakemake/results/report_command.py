"""`adaptive-snakemake report [OUTPUT]`: draw the report's pages, then collect them into one
HTML file with Snakemake's own report (`snakemake --report`).

The pages (workflow/rules/report.smk) are drawn when asked for unless config report_at_end is
true, and `snakemake --report` embeds only the pages of the targets it is given: so the two
Snakemake commands below, with the same target and arguments, are the whole report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

TARGET = "report_pages"


def report_commands(output: str, current: bool, extra: list[str]) -> list[list[str]]:
    snakemake = [sys.executable, "-m", "snakemake", TARGET, *extra]
    if current:  # while a run goes on its lock is held; the pages only read its files
        snakemake += ["--nolock", "--config", "report_from=current"]
    return [snakemake, [*snakemake, "--report", output]]


def main_report(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="adaptive-snakemake report",
        description="Draw the report's pages and collect them into one HTML file "
        "(run it in the workflow directory).",
    )
    parser.add_argument("output", nargs="?", default="report.html", help="default report.html")
    parser.add_argument(
        "--current",
        action="store_true",
        help="draw from what exists now (results, checkpoints, metrics): for a run that has "
        "not finished, failed, or is still running; without it the pages are drawn from the "
        "results, and learners that have not reached their goals would run first",
    )
    parser.add_argument(
        "snakemake_args", nargs=argparse.REMAINDER, help="passed to both snakemake calls"
    )
    args = parser.parse_args(argv)
    for command in report_commands(args.output, args.current, args.snakemake_args):
        done = subprocess.run(command)
        if done.returncode != 0:
            print(f"adaptive-snakemake report: {' '.join(command[2:])} failed", file=sys.stderr)
            return done.returncode
    print(f"report written to {args.output}")
    return 0
