"""Fixtures for tests against the real single-node SLURM test cluster.

`slurm_cluster` stands the cluster up once per session with
scripts/setup-test-slurm.sh (a no-op of about a second when it is already up).

Skip policy: without root the cluster cannot be stood up and the tests skip,
except in CI (env CI set, e.g. CI=true), where every skip in tests/cluster is
turned into a failure: a CI run that silently skipped the cluster proves nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup-test-slurm.sh"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
SETUP_TIMEOUT_S = 600
NOT_ROOT_REASON = (
    "needs root to stand up the SLURM test cluster; run scripts/setup-test-slurm.sh as root"
)
CLUSTER_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SlurmCluster:
    """What a test needs to submit to the test cluster (values set by the setup script)."""

    cluster: str
    partition: str
    account: str
    node: str
    cpus: int
    python: Path  # the project's venv python, with mpi4py and the mpich wheel


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail(f"{NOT_ROOT_REASON} (CI is set: cluster tests must run)", pytrace=False)
        pytest.skip(NOT_ROOT_REASON)
    try:
        proc = subprocess.run(
            ["bash", str(SETUP_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{SETUP_SCRIPT} did not finish in {SETUP_TIMEOUT_S} s\n"
            f"--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}",
            pytrace=False,
        )
    if proc.returncode != 0:
        pytest.fail(
            f"{SETUP_SCRIPT} failed with exit code {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return SlurmCluster(
        cluster="testcluster",
        partition="debug",
        account="adaptive",
        node=socket.gethostname().split(".")[0],
        cpus=int(os.environ.get("SLURM_TEST_CPUS", "8")),
        python=VENV_PYTHON,
    )


def _in_cluster_dir(path: Path | str) -> bool:
    return Path(path).resolve().is_relative_to(CLUSTER_DIR)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _in_cluster_dir(item.path):
            item.add_marker(pytest.mark.cluster)


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (in_ci() and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI, which counts as a failure for tests/cluster "
        f"(CI={os.environ.get('CI')!r}): {reason}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if _in_cluster_dir(item.path):
        _fail_skip_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    # A module-level pytest.skip() shows up here, not in the test reports.
    report = yield
    if collector.path is not None and _in_cluster_dir(collector.path):
        _fail_skip_in_ci(report)
    return report
