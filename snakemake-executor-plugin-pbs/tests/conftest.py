"""Fixtures of the plugin's tests: a fake PBS server that runs the jobs on this machine."""

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("fake_pbs", Path(__file__).parent / "fake_pbs.py")
fake_pbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pbs)


@pytest.fixture
def workdir(tmp_path):
    """(working directory, environment for snakemake, fake server): the fake's qsub, qstat
    and qdel first on PATH; its qsub runs each job script in the background."""
    fake_pbs.install(tmp_path / "bin", sys.executable)
    wd = tmp_path / "wd"
    wd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    env.update(
        PATH=os.pathsep.join(
            [str(tmp_path / "bin"), str(Path(sys.executable).parent), env["PATH"]]
        ),
        FAKE_PBS_DIR=str(tmp_path / "server"),
        FAKE_PBS_RUN="1",
        SNAKEMAKE_PBS_GRACE_SECONDS="5",
    )
    yield wd, env, fake_pbs.FakeServer(tmp_path / "server")
    for job in fake_pbs.FakeServer(tmp_path / "server").jobs().values():
        if job.get("pgid") and job["state"] != "F":  # never leave a fake job running
            try:
                os.killpg(job["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
