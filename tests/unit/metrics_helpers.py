"""What the metrics tests share: a clean monitor environment, a local collector's settings."""

import os
import socket
import time

import pytest

from adaptive_snakemake.metrics.address import ENV_VAR
from adaptive_snakemake.metrics.settings import MonitorSettings


@pytest.fixture(autouse=True)
def no_monitor_env():
    """Tests choose their own monitor address; the environment's must not leak in."""
    saved = os.environ.pop(ENV_VAR, None)
    yield
    os.environ.pop(ENV_VAR, None)
    if saved is not None:
        os.environ[ENV_VAR] = saved


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_settings(**changes) -> MonitorSettings:
    values = dict(host="127.0.0.1", bind="127.0.0.1", port=free_port(), status_interval=0.1)
    values.update(changes)
    return MonitorSettings(**values)


def wait_for(condition, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
