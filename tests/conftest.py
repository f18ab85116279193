"""Shared fixtures: an injected clock and the fakes that stand in at the edges."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeClock

# Each suite directory carries its marker, so `-m "not deploy"` and the like select by suite.
SUITE_MARKERS = {
    "deploy": "deploy",
    "fuzz": "fuzz",
    "homeassistant": "homeassistant",
    "integration": "integration",
    "soak": "soak",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="also run the soak (tests/soak, about a minute); ./scripts/test and CI pass it",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip_soak = pytest.mark.skip(reason="the soak runs with --soak (./scripts/test passes it)")
    for item in items:
        relative = item.path.relative_to(here) if item.path.is_relative_to(here) else None
        marker = SUITE_MARKERS.get(relative.parts[0]) if relative and relative.parts else None
        if marker is not None:
            item.add_marker(marker)
        if item.get_closest_marker("soak") and not config.getoption("--soak"):
            item.add_marker(skip_soak)


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
