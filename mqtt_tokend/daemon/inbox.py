"""What arrives at the agent's loop, and whether a refresh request may cost a Spotify call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mqtt_tokend.adapters.store import Tokens
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.wire import Reason, token_sha256

__all__ = [
    "Connected",
    "Disconnected",
    "InboxItem",
    "RefreshGate",
    "Request",
    "Stop",
    "token_sha256",
]


class Connected:
    """Inbox item: the broker (re)accepted us; republish every retained message."""


class Disconnected:
    """Inbox item: the connection to the broker was lost (health follows after a grace)."""


class Stop:
    """Inbox item: stop the loop."""


@dataclass(frozen=True)
class Request:
    """Inbox item: a message on a request topic and when it arrived (monotonic)."""

    message: Message
    received: float


InboxItem = Connected | Disconnected | Stop | Request


class RefreshGate:
    """Single flight and rate limit for refresh requests; times are monotonic seconds.

    A request that arrived before the last attempt ended is answered by that attempt. A plain
    request within `min_interval` of the last attempt gets the current token. A consumer whose
    current token was rejected gets one refresh at once, unless one was already tried for
    that token. Nothing reaches Spotify while a Retry-After hold is in force.
    """

    def __init__(self, *, min_interval: float) -> None:
        self._min_interval = min_interval
        self._last_end: float | None = None
        self._last_start_wall: float | None = None
        self._hold_until: float | None = None
        self._last_success: float | None = None

    def attempted(self, *, started_wall: float, ended: float, succeeded: bool = True) -> None:
        """Record a refresh attempt; only a success starts the `min_interval` again."""
        self._last_start_wall = started_wall
        self._last_end = ended
        if succeeded:
            self._last_success = ended

    def hold(self, *, until: float) -> None:
        """Spotify asked us to wait (Retry-After) until this monotonic time."""
        self._hold_until = until

    def should_call(
        self, request: Request, body: dict[str, Any], tokens: Tokens, *, now: float
    ) -> bool:
        """True when this request justifies a call to Spotify now."""
        if self._last_end is not None and request.received <= self._last_end:
            return False
        if self._hold_until is not None and now < self._hold_until:
            return False
        holding_current = body.get("token_sha256") == token_sha256(tokens.access_token)
        tried_this_token = (
            self._last_start_wall is not None and self._last_start_wall > tokens.issued_at
        )
        if body.get("reason") == Reason.REJECTED and holding_current and not tried_this_token:
            return True
        return self._last_success is None or now - self._last_success >= self._min_interval
