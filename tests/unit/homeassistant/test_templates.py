"""The entities' templates, rendered with stand-ins for Home Assistant's Jinja against health
records of every state."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.notices import EVENTS
from tests.unit.homeassistant.helpers import NOW, VERSION, render, render_text

# ---- the templates, rendered with stand-ins for Home Assistant's Jinja ---------------------


def health(**changes: Any) -> dict[str, Any]:
    return {
        "state": "ok",
        "message": "token refreshed",
        "expires_at": NOW + 3000.25,
        "last_refresh": NOW - 600,
        "next_refresh": NOW + 2400,
        "consecutive_failures": 0,
        "instructions": None,
        "checked_at": NOW,
        "user": "owner",
        "version": VERSION,
        "reauth_by": NOW + 170 * 86400,
    } | changes


@pytest.mark.parametrize("key", ["token_expiry", "last_refresh", "next_refresh", "reauth_by"])
def test_timestamps_render_iso_8601_with_a_zone(
    key: str, payloads: dict[str, dict[str, Any]]
) -> None:
    field = {"token_expiry": "expires_at"}.get(key, key)
    template = payloads[key]["value_template"]
    record = health()
    rendered = render(template, record)
    parsed = datetime.fromisoformat(rendered)
    assert parsed.tzinfo is not None
    assert parsed.timestamp() == pytest.approx(record[field], abs=1e-3)
    assert render(template, health(**{field: None})) == "None"  # Home Assistant: unknown
    assert render(template, {"state": "starting"}) == "None"  # a record without the field
    assert render(template, health(**{field: 1_700_000_000})) == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize("state", [s.value for s in State])
def test_state_problem_and_login(state: str, payloads: dict[str, dict[str, Any]]) -> None:
    record = health(state=state)
    shown = render(payloads["token_state"]["value_template"], record)
    assert shown == ha.STATE_NAMES[State(state)]
    assert shown in payloads["token_state"]["options"]
    problem = render(payloads["problem"]["value_template"], record)
    expected = "ON" if state in ("auth_required", "error", "degraded") else "OFF"
    assert problem == expected
    assert problem in (payloads["problem"]["payload_on"], payloads["problem"]["payload_off"])
    login = render(payloads["login"]["value_template"], record)
    assert login == ("Login required" if state == "auth_required" else "OK")


def test_a_state_this_release_does_not_know_is_unknown(
    payloads: dict[str, dict[str, Any]],
) -> None:
    assert render(payloads["token_state"]["value_template"], health(state="sleeping")) == "None"


def test_the_token_state_carries_message_and_instructions(
    payloads: dict[str, dict[str, Any]],
) -> None:
    template = payloads["token_state"]["json_attributes_template"]
    record = health(state="auth_required", instructions="Open the link.")
    assert json.loads(render(template, record)) == {
        "state": "auth_required",
        "message": "token refreshed",
        "instructions": "Open the link.",
    }
    assert json.loads(render(template, {})) == {
        "state": None,
        "message": None,
        "instructions": None,
    }


def test_login_link_comes_from_the_login_topic(payloads: dict[str, dict[str, Any]]) -> None:
    url = "https://accounts.spotify.com/authorize?client_id=abc&state=xyz"
    login = payloads["login"]
    assert json.loads(render_text(login["json_attributes_template"], url + "\n")) == {
        "auth_url": url
    }
    # Cleared (an empty retained message): no link.
    assert json.loads(render_text(login["json_attributes_template"], "")) == {"auth_url": None}
    # The health record no longer names the link; the state still says a login is needed.
    assert render(login["value_template"], health(state="auth_required")) == ha.LOGIN_NEEDED


def test_failures_and_the_text_entity(payloads: dict[str, dict[str, Any]]) -> None:
    template = payloads["consecutive_failures"]["value_template"]
    assert render(template, health(consecutive_failures=4)) == "4"
    assert render(template, health(consecutive_failures=None)) == "0"
    assert render(template, {"state": "ok"}) == "0"
    assert render(payloads["login_redirect"]["value_template"], health()) == ""


@pytest.mark.parametrize("event", [*EVENTS, "something_new", None])
def test_alerts_become_events(event: str | None, payloads: dict[str, dict[str, Any]]) -> None:
    alert = {"event": event, "message": "m", "instructions": None, "at": NOW}
    rendered = json.loads(render(payloads["alert"]["value_template"], alert))
    expected = event if event in EVENTS else "other"
    assert rendered == {
        "event_type": expected,
        "event": event,
        "message": "m",
        "instructions": None,
        "at": NOW,
    }
    assert rendered["event_type"] in payloads["alert"]["event_types"]
