"""The wire format, once: tokens, requests, replies, transactions and availability.

Pure: bytes and str in, values out. No paho and no crypto: the Fernet step around a token's
JSON object stays in the cipher (`adapters.crypto`), and sending stays in the MQTT adapter.
The agent and `TokenConsumer` (and the CLI) read and write every payload through here.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mqtt_tokend.contract.tokens import unix_seconds
from mqtt_tokend.contract.topics import OFFLINE, ONLINE
from mqtt_tokend.errors import CryptoError

MAX_REQUEST_BYTES = 4096
MAX_REQUEST_DEPTH = 16  # nesting levels; the echoed `transaction` must not exhaust the stack
NEAR_EXPIRY_SECONDS = 5.0  # a token this close to expiry is not handed out (or 1/4 its life)


class TokenKind(StrEnum):
    """Whose token it is: the user's login, or the app's client credentials."""

    USER = "user"
    APP = "app"


class Reason(StrEnum):
    """The `reason` of a refresh request that changes what the agent does."""

    REJECTED = "rejected"  # Spotify answered 401 to the sender's current token


class NotRefreshed(StrEnum):
    """Why a refresh request got no new token: the `reason` in the reply's data."""

    SINGLE_FLIGHT = "single_flight"  # an attempt that ended after the request arrived answers it
    RATE_LIMITED = "rate_limited"  # within `min_refresh_interval` of the last refresh
    NOT_CURRENT = "not_current"  # the rejected token is not the current one: read the retained one
    RETRY_AFTER = "retry_after"  # Spotify's Retry-After holds every refresh
    FAILED = "failed"  # Spotify was asked and gave no new token (health says why)
    NO_LOGIN = "no_login"  # there is no login to refresh (a person must log in)


# ---- tokens --------------------------------------------------------------------------------


def token_sha256(access_token: str) -> str:
    """The hex SHA-256 by which a consumer names the access token it holds."""
    return hashlib.sha256(access_token.encode()).hexdigest()


def token_plaintext(
    *, access_token: str, scope: str, expires_at: float, issued_at: float, kind: str
) -> dict[str, Any]:
    """The JSON object that is encrypted onto `<base>/token` and `<base>/token/app`."""
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "scope": scope,
        "expires_at": round(expires_at, 3),
        "issued_at": round(issued_at, 3),
        "kind": str(kind),
    }


def usable(expires_at: float, issued_at: float | None, *, now: float) -> bool:
    """True while a token is worth handing out: not expired, nor within the margin of it."""
    lifetime = expires_at - issued_at if issued_at is not None else 0.0
    return expires_at - min(NEAR_EXPIRY_SECONDS, max(lifetime, 0.0) / 4) > now


@dataclass(frozen=True)
class Token:
    """An access token taken from the broker (times in Unix seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    issued_at: float
    scope: str = ""
    kind: str = TokenKind.USER
    token_type: str = "Bearer"

    @classmethod
    def from_plaintext(cls, value: dict[str, Any]) -> Token:
        """The token in a decrypted JSON object; CryptoError when it is not a token object."""
        access, expires_at = value.get("access_token"), unix_seconds(value.get("expires_at"))
        if not isinstance(access, str) or not access or expires_at is None:
            raise CryptoError("the decrypted payload is not a token object")
        issued_at = unix_seconds(value.get("issued_at"))
        if issued_at is None and value.get("issued_at") is not None:
            raise CryptoError("the decrypted payload is not a token object (issued_at)")
        return cls(
            access_token=access,
            expires_at=expires_at,
            issued_at=expires_at if issued_at is None else issued_at,
            scope=str(value.get("scope") or ""),
            kind=str(value.get("kind") or TokenKind.USER),
            token_type=str(value.get("token_type") or "Bearer"),
        )

    def plaintext(self) -> dict[str, Any]:
        """The JSON object this token travels as (what `get-token --json` prints)."""
        body = token_plaintext(
            access_token=self.access_token,
            scope=self.scope,
            expires_at=self.expires_at,
            issued_at=self.issued_at,
            kind=self.kind,
        )
        return body | {"token_type": self.token_type}

    @property
    def authorization(self) -> str:
        """The value of an HTTP `Authorization` header."""
        return f"{self.token_type} {self.access_token}"

    @property
    def sha256(self) -> str:
        """The hex SHA-256 by which the agent knows this token."""
        return token_sha256(self.access_token)

    def usable(self, now: float) -> bool:
        """True while the token is worth handing out."""
        return usable(self.expires_at, self.issued_at, now=now)


# ---- requests and replies ------------------------------------------------------------------


class RequestError(ValueError):
    """A request payload the agent cannot act on; the text goes back to the sender."""


def parse_request(payload: bytes) -> dict[str, Any]:
    """Empty, or a JSON object with optional `transaction`, `reason`, `token_sha256`."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise RequestError(f"payload too large ({len(payload)} bytes, at most {MAX_REQUEST_BYTES})")
    if not payload.strip():
        return {}
    try:
        body = json.loads(
            payload.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
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


def _finite_float(text: str) -> float:
    """1e400 is valid JSON but parses to inf, which cannot be echoed back as JSON."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


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


def new_transaction() -> str:
    """A fresh transaction id for a request whose answer the sender waits for."""
    return uuid.uuid4().hex


def request_body(transaction: str, **fields: str) -> str:
    """The JSON payload of a request with a transaction (and e.g. `reason`)."""
    return json.dumps({"transaction": transaction} | fields)


def rejected_request(access_token: str, *, transaction: Any = None) -> dict[str, Any]:
    """The refresh request of a consumer whose token Spotify refused (401)."""
    body: dict[str, Any] = {
        "reason": str(Reason.REJECTED),
        "token_sha256": token_sha256(access_token),
    }
    if transaction is not None:
        body["transaction"] = transaction
    return body


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh request came to: a new token, or why not and when the next may call
    Spotify (Unix seconds; None when no request can make one before a person acts)."""

    refreshed: bool
    reason: NotRefreshed | None = None
    next_allowed_at: float | None = None

    def data(self, health: dict[str, Any]) -> dict[str, Any]:
        """The reply's `data`: the outcome, then the health record (the current token's state)."""
        outcome: dict[str, Any] = {"refreshed": self.refreshed}
        if not self.refreshed:
            at = self.next_allowed_at
            outcome |= {
                "reason": str(self.reason or NotRefreshed.FAILED),
                "next_allowed_at": None if at is None else round(at, 3),
            }
        return outcome | health


def rejected_sha256(body: dict[str, Any]) -> str | None:
    """The SHA-256 of the token a refresh request reports as refused; None for any other."""
    named = body.get("token_sha256")
    return named if body.get("reason") == Reason.REJECTED and isinstance(named, str) else None


def response_payload(
    *,
    ok: bool,
    data: dict[str, Any] | None = None,
    error: str | None = None,
    transaction: Any = None,
) -> dict[str, Any]:
    """The body of `<base>/response/<verb>`."""
    payload: dict[str, Any] = {"status": "ok" if ok else "error", "data": data or {}}
    if error is not None:
        payload["error"] = error
    if transaction is not None:
        payload["transaction"] = transaction
    return payload


def json_object(payload: bytes | None) -> dict[str, Any] | None:
    """A payload's JSON object; None when it is empty, not JSON, or not an object."""
    if not payload:
        return None
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def answer_to(payload: bytes | None, transaction: str) -> dict[str, Any] | None:
    """The response body when this payload answers `transaction`, else None."""
    body = json_object(payload)
    return body if body is not None and body.get("transaction") == transaction else None


# ---- availability --------------------------------------------------------------------------


def availability(payload: bytes | None) -> bool | None:
    """True for `online`, False for `offline`; None when absent or anything else.

    The agent writes only those two words (and its Last Will says `offline`). Anything else was
    written by someone else, so it says nothing about the agent: unknown, never "dead".
    """
    if payload is None:
        return None
    return {ONLINE.encode(): True, OFFLINE.encode(): False}.get(payload)
