"""Shared fixtures: an injected clock and the fakes that stand in at the edges."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when the test moves it."""
    return FakeClock()


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A 0755 scratch directory that Mosquitto (or another user) can read after dropping root:
    pytest's tmp_path is 0700. Removed after the test."""
    directory = Path(tempfile.mkdtemp(prefix="mqtt-tokend-"))
    try:
        directory.chmod(0o755)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
