"""What the session keeper hands to the sinks after each step: what is true now, what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.core.statemachine import Event

# Events after which the login works again: no login is offered, no notice stands.
RECOVERY_EVENTS = (Event.REFRESHED, Event.LOGIN_STORED, Event.LOADED)


class Retained(StrEnum):
    """A retained message the step changed, so the MQTT sink must publish it again."""

    USER_TOKEN = "user_token"
    APP_TOKEN = "app_token"
    HEALTH = "health"
    EVERYTHING = "everything"  # availability, both tokens and health (a new key)


@dataclass(frozen=True)
class ServedToken:
    """An access token as it is served on MQTT (never the refresh token)."""

    access_token: str = field(repr=False)
    scope: str
    issued_at: float
    expires_at: float

    @classmethod
    def of(cls, tokens: Tokens | None) -> ServedToken | None:
        """The served part of the user's tokens."""
        if tokens is None:
            return None
        return cls(tokens.access_token, tokens.scope, tokens.issued_at, tokens.expires_at)


@dataclass(frozen=True)
class Happening:
    """One event of the state machine, as things stood when it happened."""

    event: Event
    message: str
    at: float
    login_rejected: bool

    @property
    def recovered(self) -> bool:
        """The login works again after this event."""
        return self.event in RECOVERY_EVENTS


@dataclass(frozen=True)
class Snapshot:
    """The session after a step of the keeper; everything here is already on disk."""

    now: float
    state: State
    message: str
    user_token: ServedToken | None = None
    app_token: ServedToken | None = None
    login_rejected: bool = False
    failures: int = 0
    next_refresh: float | None = None
    retry_after_until: float | None = None  # Spotify's Retry-After holds refreshes until then
    last_refresh: float | None = None
    user: str | None = None
    reauth_by: float | None = None
    player: dict[str, Any] | None = None
    devices: tuple[dict[str, Any], ...] | None = None  # fetched in this step
    happenings: tuple[Happening, ...] = ()
    reauth_reminder: bool = False  # a reminder threshold was crossed in this step
    changed: frozenset[Retained] = frozenset()
    # The remote login offered while the login is rejected: set by the agent, which owns it.
    login_url: str | None = field(default=None, repr=False)  # it carries the login's state


@dataclass
class StepLog:
    """What happened during a step of the keeper, until the snapshot hands it over."""

    happenings: list[Happening] = field(default_factory=list)
    changed: set[Retained] = field(default_factory=set)
    devices: list[dict[str, Any]] | None = None  # fetched in this step
    reauth_reminder: bool = False
