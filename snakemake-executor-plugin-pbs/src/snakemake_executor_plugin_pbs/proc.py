"""Run a PBS client command (qsub, qstat, qdel) with a deadline, output through files.

Files, not pipes: PBS Pro's qsub may leave a daemonised helper behind that inherits its
stdout; with a pipe we would wait for that helper to exit.

Own session: Ctrl-C in snakemake's terminal signals the whole foreground process group.
A qsub killed half-way may leave a job nobody knows about, and a qdel killed half-way
leaves jobs running; in their own session the clients finish what they started.
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
