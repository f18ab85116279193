"""The emulator the tests here talk to, on an injected clock, and one keep-alive HTTP session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.fakes import FakeClock


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[SpotifyEmulator]:
    """An emulator on a free port whose time moves only when the test moves `clock`."""
    with SpotifyEmulator(clock=clock.wall) as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """One keep-alive client session, as the agent uses."""
    with requests.Session() as session:
        yield session
