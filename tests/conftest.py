"""Shared fixtures: an injected clock and the fakes that stand in at the edges."""

from __future__ import annotations

import pytest

from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when the test moves it."""
    return FakeClock()
