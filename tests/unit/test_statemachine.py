"""Every transition of the health state machine, with the facts passed in."""

from __future__ import annotations

import pytest

from mqtt_tokend.contract.health import State
from mqtt_tokend.core.statemachine import Event, Facts, transition

NOW = 1_800_000_000.0
VALID = Facts(now=NOW, expires_at=NOW + 100)
EXPIRED = Facts(now=NOW, expires_at=NOW - 1)
NONE = Facts(now=NOW)
EXPIRED_APP = Facts(now=NOW, expires_at=NOW - 1, app_expires_at=NOW + 100)
REJECTED = Facts(now=NOW, expires_at=NOW + 100, login_rejected=True)
REJECTED_APP = Facts(now=NOW, expires_at=NOW - 1, app_expires_at=NOW + 50, login_rejected=True)
NO_LOGIN = Facts(now=NOW, login_rejected=True)

ALL_STATES = list(State)

CASES = [
    # (event, facts, expected from every state)
    (Event.LOADED, VALID, State.OK),
    (Event.LOADED, EXPIRED, State.STARTING),
    (Event.LOADED, NO_LOGIN, State.AUTH_REQUIRED),
    (Event.REFRESHED, VALID, State.OK),
    (Event.LOGIN_STORED, VALID, State.OK),
    (Event.LOGIN_STORED, EXPIRED, State.STARTING),
    (Event.TRANSIENT_FAILURE, VALID, State.RETRYING),
    (Event.TRANSIENT_FAILURE, EXPIRED, State.ERROR),
    (Event.TRANSIENT_FAILURE, EXPIRED_APP, State.DEGRADED),
    (Event.GRANT_REJECTED, REJECTED, State.AUTH_REQUIRED),
    (Event.GRANT_REJECTED, REJECTED_APP, State.DEGRADED),
    (Event.CLIENT_REJECTED, VALID, State.ERROR),
    (Event.WRITE_FAILED, VALID, State.ERROR),
    (Event.TICK, NO_LOGIN, State.AUTH_REQUIRED),
    (Event.TICK, REJECTED_APP, State.DEGRADED),
]


@pytest.mark.parametrize("start", ALL_STATES, ids=[s.value for s in ALL_STATES])
@pytest.mark.parametrize(
    ("event", "facts", "expected"),
    CASES,
    ids=[f"{e.value}-{i}->{x.value}" for i, (e, _f, x) in enumerate(CASES)],
)
def test_events_lead_to_the_same_state_from_anywhere(
    start: State, event: Event, facts: Facts, expected: State
) -> None:
    assert transition(start, event, facts) == expected


TICKS = [
    (State.OK, VALID, State.OK),
    (State.OK, EXPIRED, State.ERROR),
    (State.OK, EXPIRED_APP, State.DEGRADED),
    (State.RETRYING, VALID, State.RETRYING),
    (State.RETRYING, EXPIRED, State.ERROR),
    (State.RETRYING, EXPIRED_APP, State.DEGRADED),
    (State.DEGRADED, EXPIRED, State.ERROR),
    (State.DEGRADED, EXPIRED_APP, State.DEGRADED),
    (State.ERROR, EXPIRED, State.ERROR),
    (State.ERROR, EXPIRED_APP, State.DEGRADED),
    (State.ERROR, VALID, State.ERROR),
    (State.STARTING, EXPIRED, State.STARTING),
    (State.STARTING, VALID, State.STARTING),
    (State.AUTH_REQUIRED, REJECTED, State.AUTH_REQUIRED),
]


@pytest.mark.parametrize(
    ("start", "facts", "expected"),
    TICKS,
    ids=[f"{s.value}-{i}->{x.value}" for i, (s, _f, x) in enumerate(TICKS)],
)
def test_time_passing_changes_state_only_when_a_token_expires(
    start: State, facts: Facts, expected: State
) -> None:
    assert transition(start, Event.TICK, facts) == expected


def test_facts_judge_validity_at_now() -> None:
    assert VALID.user_valid and not EXPIRED.user_valid and not NONE.user_valid
    assert EXPIRED_APP.app_valid and not VALID.app_valid
    assert not Facts(now=NOW, expires_at=NOW).user_valid  # expiring now is expired
