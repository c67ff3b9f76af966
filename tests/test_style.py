"""The workflow and the code pass the linters the project promises."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO, environment

BIN = Path(sys.executable).parent


def _run(*command):
    return subprocess.run(command, cwd=REPO, env=environment(), capture_output=True, text=True)


@pytest.mark.workflow
def test_snakemake_lint_passes():
    result = _run(sys.executable, "-m", "snakemake", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_snakefmt_check_passes():
    result = _run(str(BIN / "snakefmt"), "--check", "workflow")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check_and_format_pass():
    check = _run(str(BIN / "ruff"), "check", ".")
    assert check.returncode == 0, check.stdout
    formatted = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout
