"""The health model: how a monitor judges a record, and what the record publishes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mqtt_tokend import __version__
from mqtt_tokend.contract.health import ExitCode, Health, State
from mqtt_tokend.contract.wording import auth_instructions
from mqtt_tokend.core.monitor_rules import judge
from mqtt_tokend.core.timing import RETRY_AFTER_CAP, retry_after_left, retry_after_until

NOW = 1_800_000_000.0
VALID = NOW + 1800
EXPIRED = NOW - 1


def record(state: str, expires_at: float | None = VALID, **extra: Any) -> dict[str, Any]:
    return {"state": state, "expires_at": expires_at, "message": f"{state} message", **extra}


@pytest.mark.parametrize(
    ("health", "online", "expected"),
    [
        (None, None, ExitCode.UNKNOWN),
        (None, True, ExitCode.UNKNOWN),
        (record("ok"), False, ExitCode.CRITICAL),
        (record("ok"), None, ExitCode.OK),
        (record("ok"), True, ExitCode.OK),
        (record("auth_required"), True, ExitCode.CRITICAL),
        (record("auth_required", None), True, ExitCode.CRITICAL),
        (record("error"), True, ExitCode.CRITICAL),
        (record("ok", EXPIRED), True, ExitCode.CRITICAL),
        (record("ok", NOW), True, ExitCode.CRITICAL),
        (record("ok", None), True, ExitCode.CRITICAL),
        (record("ok", "soon"), True, ExitCode.CRITICAL),  # type: ignore[arg-type]
        (record("retrying", EXPIRED), True, ExitCode.CRITICAL),
        (record("retrying"), True, ExitCode.WARNING),
        (record("degraded"), True, ExitCode.WARNING),
        (record("degraded", None), True, ExitCode.WARNING),
        (record("degraded", EXPIRED), True, ExitCode.WARNING),
        (record("starting"), True, ExitCode.WARNING),
        (record("starting", EXPIRED), True, ExitCode.CRITICAL),
        (record("bogus"), True, ExitCode.UNKNOWN),
        ({}, True, ExitCode.CRITICAL),
    ],
    ids=[
        "no-record",
        "no-record-online",
        "offline",
        "ok-online-unknown",
        "ok",
        "auth-required",
        "auth-required-no-token",
        "error",
        "expired-token",
        "token-expiring-this-second",
        "no-expiry",
        "garbage-expiry",
        "retrying-token-expired",
        "retrying",
        "degraded",
        "degraded-no-user-token",
        "degraded-user-token-expired",
        "starting",
        "starting-token-expired",
        "unknown-state",
        "empty-record",
    ],
)
def test_judge(health: dict[str, Any] | None, online: bool | None, expected: ExitCode) -> None:
    code, why = judge(health, online=online, now=NOW)
    assert code is expected, why
    assert why
    assert "\n" not in why


def test_judge_offline_beats_a_good_record() -> None:
    code, why = judge(record("ok"), online=False, now=NOW)
    assert code is ExitCode.CRITICAL
    assert "offline" in why


def test_judge_explains_with_the_agent_message() -> None:
    _, why = judge(record("auth_required", message="Spotify refused"), online=True, now=NOW)
    assert "auth_required" in why
    assert "Spotify refused" in why


def test_judge_ok_says_how_long_the_token_lasts() -> None:
    _, why = judge(record("ok", NOW + 600), online=True, now=NOW)
    assert "600 s" in why


def test_exit_codes_are_nagios() -> None:
    assert [int(c) for c in (ExitCode.OK, ExitCode.WARNING, ExitCode.CRITICAL)] == [0, 1, 2]
    assert int(ExitCode.UNKNOWN) == 3


def test_states_are_the_spec_values() -> None:
    assert {s.value for s in State} == {
        "starting",
        "ok",
        "retrying",
        "degraded",
        "auth_required",
        "error",
    }


DOCUMENTED_HEALTH_KEYS = {
    "state",
    "expires_at",
    "last_refresh",
    "next_refresh",
    "consecutive_failures",
    "message",
    "instructions",
    "checked_at",
    "version",
}


@pytest.fixture
def health() -> Health:
    return Health(
        state=State.RETRYING,
        message="Spotify answered 503; retrying in 12 s",
        checked_at=NOW + 0.123456,
        expires_at=VALID,
        last_refresh=NOW - 1800,
        next_refresh=NOW + 12,
        consecutive_failures=2,
        user="Alice",
    )


def test_payload_has_the_spec_keys(health: Health) -> None:
    payload = health.to_payload()
    assert set(payload) >= DOCUMENTED_HEALTH_KEYS
    assert payload["state"] == "retrying"
    assert payload["consecutive_failures"] == 2
    assert payload["expires_at"] == VALID
    assert payload["next_refresh"] == NOW + 12
    assert payload["checked_at"] == round(NOW + 0.123456, 3)
    assert payload["instructions"] is None
    assert payload["version"] == __version__
    assert json.loads(json.dumps(payload)) == payload  # plain JSON


def test_payload_round_trips_through_judge(health: Health) -> None:
    code, _ = judge(json.loads(json.dumps(health.to_payload())), online=True, now=NOW)
    assert code is ExitCode.WARNING


def test_payload_with_nothing_known_is_null_not_missing() -> None:
    payload = Health(state=State.STARTING, message="starting", checked_at=NOW).to_payload()
    assert set(payload) >= DOCUMENTED_HEALTH_KEYS
    for key in ("expires_at", "last_refresh", "next_refresh", "instructions"):
        assert payload[key] is None


def test_auth_required_payload_carries_instructions() -> None:
    health = Health(
        state=State.AUTH_REQUIRED,
        message="Spotify refused the refresh token",
        checked_at=NOW,
        instructions=auth_instructions("/etc/mqtt-tokend/config.toml"),
    )
    payload = health.to_payload()
    assert "On the Pi run: sudo mqtt-tokend auth " in payload["instructions"]
    assert judge(payload, online=True, now=NOW)[0] is ExitCode.CRITICAL


def test_auth_instructions_without_config_path() -> None:
    text = auth_instructions(None)
    assert "mqtt-tokend auth" in text
    assert "--config" not in text


def test_health_holds_no_token_field() -> None:
    # The record has no place for a secret: nothing named like one, in the class or payload.
    payload = Health(state=State.OK, message="token refreshed", checked_at=NOW).to_payload()
    fields = set(Health.__dataclass_fields__) | set(payload)
    for name in fields:
        assert "token" not in name.lower() or name == "token_type", name
        assert "secret" not in name.lower(), name
        assert "key" not in name.lower(), name
    text = json.dumps(payload)
    assert "access_token" not in text
    assert "refresh_token" not in text


# -- Retry-After: capped at an hour, shown in health, kept across a restart ------------------


def test_retry_after_until_is_capped_at_an_hour() -> None:
    assert retry_after_until(1000.0, 120.0) == 1120.0
    assert retry_after_until(1000.0, 1e9) == 1000.0 + RETRY_AFTER_CAP == 4600.0
    assert retry_after_until(1000.0, -5.0) == 1000.0


@pytest.mark.parametrize(
    ("until", "now", "left"),
    [
        (None, 1000.0, None),
        (900.0, 1000.0, None),
        (1000.0, 1000.0, None),
        (1300.0, 1000.0, 300.0),
        (1000.0 + 86400, 1000.0, 3600.0),
    ],
    ids=["none", "ended", "ends-now", "holds", "beyond-the-cap"],
)
def test_retry_after_left(until: float | None, now: float, left: float | None) -> None:
    assert retry_after_left(until, now) == left


def test_health_shows_when_the_retry_after_ends() -> None:
    health = Health(state=State.RETRYING, message="m", checked_at=1.0, retry_after_until=3601.0)
    assert health.to_payload()["retry_after_until"] == 3601.0
    assert (
        Health(state=State.OK, message="m", checked_at=1.0).to_payload()["retry_after_until"]
        is None
    )
