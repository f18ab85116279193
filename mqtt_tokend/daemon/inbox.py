"""What arrives at the agent's loop, and whether a refresh request may cost a Spotify call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mqtt_tokend.adapters.store import Tokens
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import token_sha256

__all__ = ["Connected", "InboxItem", "RefreshGate", "Request", "Stop", "token_sha256"]

MAX_REQUEST_BYTES = 4096
MAX_REQUEST_DEPTH = 16  # nesting levels; the echoed `transaction` must not exhaust the stack


class Connected:
    """Inbox item: the broker (re)accepted us; republish every retained message."""


class Stop:
    """Inbox item: stop the loop."""


@dataclass(frozen=True)
class Request:
    """Inbox item: a message on a request topic and when it arrived (monotonic)."""

    message: Message
    received: float


InboxItem = Connected | Stop | Request


class RequestError(ValueError):
    """A request payload the agent cannot act on; the text goes back to the sender."""


def parse_request(payload: bytes) -> dict[str, Any]:
    """Empty, or a JSON object with optional `transaction`, `reason`, `token_sha256`."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise RequestError(f"payload too large ({len(payload)} bytes, at most {MAX_REQUEST_BYTES})")
    if not payload.strip():
        return {}
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError("payload is not JSON (send nothing, or a JSON object)") from None
    if not isinstance(body, dict):
        raise RequestError("payload must be a JSON object")
    if _depth(body) > MAX_REQUEST_DEPTH:
        raise RequestError(f"payload is nested too deeply (at most {MAX_REQUEST_DEPTH} levels)")
    for key in ("reason", "token_sha256"):
        if key in body and not isinstance(body[key], str):
            raise RequestError(f"'{key}' must be a string")
    return body


def _refuse_constant(name: str) -> None:
    """NaN and Infinity are not JSON: echoed back, they would break the sender's parser."""
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """Levels of nesting of a parsed JSON value, counted without recursion."""
    level: list[Any] = [value]
    levels = 0
    while level:
        levels += 1
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return levels


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

    def attempted(self, *, started_wall: float, ended: float) -> None:
        """Record a refresh attempt (successful or not)."""
        self._last_start_wall = started_wall
        self._last_end = ended

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
        if body.get("reason") == "rejected" and holding_current and not tried_this_token:
            return True
        return self._last_end is None or now - self._last_end >= self._min_interval
