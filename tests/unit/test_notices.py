"""The alert events: each one advertised is sent by some part of the package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_tokend.contract import notices
from mqtt_tokend.contract.notices import EVENTS, AlertEvent

PACKAGE = Path(notices.__file__).resolve().parents[1]


def _sources() -> str:
    return "\n".join(
        path.read_text() for path in PACKAGE.rglob("*.py") if path.name != "notices.py"
    )


@pytest.mark.parametrize("event", list(AlertEvent), ids=[e.value for e in AlertEvent])
def test_every_advertised_event_is_sent_somewhere(event: AlertEvent) -> None:
    # Home Assistant lists EVENTS as the event entity's types: one never sent is a false promise.
    used = re.search(rf"\b(notices|AlertEvent)\.{event.name}\b", _sources())
    assert used is not None, f"{event.value} is advertised but nothing sends it"


def test_events_are_the_plain_strings_of_the_enum() -> None:
    assert tuple(e.value for e in AlertEvent) == EVENTS
    assert all(type(e) is str for e in EVENTS)
    assert "degraded" not in EVENTS  # the health state exists; no alert was ever sent for it


def test_the_contract_loads_no_adapter() -> None:
    code = (
        "import sys, mqtt_tokend.contract.notices, mqtt_tokend.contract.wire\n"
        "print(sorted(m for m in sys.modules if m.startswith('mqtt_tokend.adapters')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
