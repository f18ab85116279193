"""The health state machine: pure transitions from (state, event, facts at `now`) to a state.

    starting ──loaded/refreshed──► ok ◄──────────── refreshed / login stored ─────────┐
        │                          │ transient failure, token still valid             │
        │                          ▼                                                  │
        │                       retrying ──token expired──► degraded (app token)      │
        │                                              └──► error    (no app token)   │
        └─ no login / grant rejected ──► auth_required ◄─► degraded (app token) ──────┘
                                                                 (a person must act)
    client rejected / state dir unwritable ──► error

A person must act (`login_rejected`) from the moment Spotify refuses the grant, or there is
no usable login, until a new login is stored; the app token only softens that to `degraded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mqtt_tokend.contract.health import State


class Event(StrEnum):
    """What happened to the session."""

    LOADED = "loaded"  # tokens read at start (or none found)
    REFRESHED = "refreshed"  # Spotify granted a new access token
    LOGIN_STORED = "login_stored"  # `auth` stored a new login
    TRANSIENT_FAILURE = "transient_failure"  # network, 5xx, 429, garbage: will retry
    GRANT_REJECTED = "grant_rejected"  # invalid_grant: the refresh token is dead
    CLIENT_REJECTED = "client_rejected"  # invalid_client: configuration
    WRITE_FAILED = "write_failed"  # the state directory cannot be written
    TICK = "tick"  # time passed: tokens may have expired, an app token may have come or gone


@dataclass(frozen=True)
class Facts:
    """What is true at `now`; every transition is a function of these alone."""

    now: float
    expires_at: float | None = None  # the user's access token, None when there is none
    app_expires_at: float | None = None  # the client-credentials token
    login_rejected: bool = False  # a person must log in again

    @property
    def user_valid(self) -> bool:
        """A user token that has not expired."""
        return self.expires_at is not None and self.expires_at > self.now

    @property
    def app_valid(self) -> bool:
        """An app token that has not expired."""
        return self.app_expires_at is not None and self.app_expires_at > self.now


def _without_user_token(facts: Facts) -> State:
    """Where we stand when no valid user token is left."""
    if facts.app_valid:
        return State.DEGRADED
    return State.AUTH_REQUIRED if facts.login_rejected else State.ERROR


def transition(state: State, event: Event, facts: Facts) -> State:
    """The next state."""
    if event in (Event.CLIENT_REJECTED, Event.WRITE_FAILED):
        return State.ERROR
    if event == Event.GRANT_REJECTED or facts.login_rejected:
        return State.DEGRADED if facts.app_valid else State.AUTH_REQUIRED
    if event in (Event.REFRESHED, Event.LOGIN_STORED, Event.LOADED):
        if facts.user_valid:
            return State.OK
        return State.STARTING if facts.expires_at is not None else _without_user_token(facts)
    if event == Event.TRANSIENT_FAILURE:
        return State.RETRYING if facts.user_valid else _without_user_token(facts)
    # TICK: only the passage of time (or an app token) changes things.
    if state in (State.OK, State.RETRYING, State.DEGRADED) and not facts.user_valid:
        return _without_user_token(facts)
    if state == State.ERROR and facts.app_valid and not facts.user_valid:
        return State.DEGRADED
    return state
