"""`adaptive-snakemake`: status of a workflow's learners, and housekeeping commands."""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "status": (
        "table of every learner (--watch refreshes it live)",
        "adaptive_snakemake.metrics.status",
        "main_status",
    ),
    "plot": (
        "draw a sweep's current state (unfinished learners from their checkpoints) into a PNG",
        "adaptive_snakemake.results.plots",
        "main_plot",
    ),
    "report": (
        "draw the report's pages and collect them into one HTML file (snakemake --report)",
        "adaptive_snakemake.results.report_command",
        "main_report",
    ),
    "cancel-orphans": (
        "cancel this workflow's SLURM jobs left running by a killed snakemake",
        "adaptive_snakemake.slurm.cancel_orphans",
        "main_cancel_orphans",
    ),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="adaptive-snakemake",
        description="Run many adaptive learners as Snakemake targets. Commands:",
        epilog="\n".join(f"  {name:15} {help_}" for name, (help_, _, _) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="see COMMAND --help")
    args = parser.parse_args(argv[:1])
    _, module_name, function_name = COMMANDS[args.command]
    import importlib

    command = getattr(importlib.import_module(module_name), function_name)
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
