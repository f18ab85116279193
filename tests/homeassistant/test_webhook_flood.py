"""Strangers flood the one-tap login webhook of a real Home Assistant; the owner's tap still
logs the real agent in, and nothing of theirs reaches the agent.

Needs `MQTT_TOKEND_HA_VENV` like test_real_ha.py. The figures (tap to `ok`, with the old
automation for comparison) come from `python -m tests.homeassistant.flood`, not from here.
"""

from __future__ import annotations

from pathlib import Path

from tests.homeassistant import real_ha as real
from tests.homeassistant.flood import STRANGERS, flood_then_tap

pytestmark = real.pytestmark

STRANGER_GETS = 5000  # before the tap
RACING_GETS = 1000  # the tap goes when half of these are answered


def test_the_owners_tap_logs_in_amid_5000_stranger_gets(tmp_path: Path) -> None:
    hass = real.find_hass()
    assert hass is not None
    outcome = flood_then_tap(
        tmp_path, hass=hass, strangers=STRANGER_GETS, racing=RACING_GETS, ok_timeout=60.0
    )
    print("\n".join(outcome.lines()))
    assert set(outcome.strangers) == set(STRANGERS)  # every kind was sent
    assert sum(outcome.strangers.values()) == STRANGER_GETS + RACING_GETS
    # Each was answered (aiohttp refuses a malformed query with 400 before any automation).
    assert sum(outcome.statuses.values()) == STRANGER_GETS + RACING_GETS
    assert set(outcome.statuses) <= {200, 400}
    assert outcome.tap_to_ok is not None, "the owner's tap was lost in the flood"
    assert outcome.passed_on == 1  # the owner's code alone reached the agent
    assert outcome.runs_exceeded == 0
    assert not outcome.log_problems, "\n".join(outcome.log_problems)
