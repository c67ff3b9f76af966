"""Fixtures shared by the unit tests."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fake_pbs", Path(__file__).resolve().parents[1] / "data" / "pbs" / "fake_pbs.py"
)
fake_pbs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pbs)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake PBS server: qsub/qstat/qdel on PATH, working directory tmp_path/wd."""
    for key in list(os.environ):
        if key.startswith("ADAPTIVE_SNAKEMAKE_PBS_") or key == "SNAKEMAKE_CLUSTER_SIDECAR_VARS":
            monkeypatch.delenv(key)
    fake_pbs.install(tmp_path / "bin", sys.executable)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PBS_DIR", str(tmp_path / "server"))
    (tmp_path / "wd").mkdir()
    monkeypatch.chdir(tmp_path / "wd")
    return fake_pbs.FakeServer(tmp_path / "server")
