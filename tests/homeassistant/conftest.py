"""The private Mosquitto each real-Home-Assistant test runs Home Assistant (and the agent) on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.dev.devbroker import PrivateMosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(tmp_path / "broker") as mosquitto:
        yield mosquitto
