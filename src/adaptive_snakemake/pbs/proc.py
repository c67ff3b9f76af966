"""Run a PBS client command with a deadline, capturing its output through files.

Files, not pipes: PBS Pro's qsub may leave a daemonised helper behind that inherits its
stdout; with a pipe we (and the snakemake reading *our* stdout) would wait for it to exit.

Own session: Ctrl-C in snakemake's terminal signals its whole foreground process group,
which includes the submit/status commands it is running and their children. A qsub
killed half-way may leave a job nobody knows about, and a status command killed by a
signal crashes snakemake-executor-plugin-cluster-generic 1.0.9 (``ret`` is unset in
``job_status``), which then never cancels the jobs. So the commands ignore SIGINT (the
profile also starts them under ``trap '' INT``) and the PBS clients run out of reach.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    rc: int | None  # None if the command could not run or timed out
    stdout: str
    stderr: str
    error: str | None = None  # why it did not run to completion


def run(argv: list[str], timeout: float, env: dict | None = None) -> Output:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            return Output(None, "", "", f"cannot run {argv[0]}: {e}")
        try:
            rc = proc.wait(timeout=timeout)
            error = None
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc, error = None, f"{argv[0]} did not answer within {timeout:g} s"
        return Output(rc, _read(out), _read(err), error)


def _read(f) -> str:
    f.seek(0, os.SEEK_SET)
    return f.read().decode("utf-8", errors="replace")
