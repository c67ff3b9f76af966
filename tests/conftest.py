"""Shared test helpers: a learners.yaml in a temporary workflow directory."""

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write_learners(tmp_path):
    """Write a learners.yaml (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "learners.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
