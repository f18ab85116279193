"""Topic names and payload shapes of the MQTT contract (mirrors `topics/`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

ONLINE = "online"
OFFLINE = "offline"

REQUEST_VERBS = frozenset({"refresh", "check", "status", "auth"})

TOKEN_KIND_USER = "user"
TOKEN_KIND_APP = "app"
REASON_REJECTED = "rejected"


@dataclass(frozen=True)
class Topics:
    """Every topic under one base topic."""

    base: str

    @property
    def availability(self) -> str:
        """`online`/`offline`, retained; also the Last Will."""
        return f"{self.base}/availability"

    @property
    def token(self) -> str:
        """The user's access token, Fernet-encrypted, retained."""
        return f"{self.base}/token"

    @property
    def token_app(self) -> str:
        """The client-credentials token, Fernet-encrypted, retained."""
        return f"{self.base}/token/app"

    @property
    def health(self) -> str:
        """The health record, plain JSON, retained."""
        return f"{self.base}/health"

    @property
    def devices(self) -> str:
        """The account's Spotify Connect devices, retained."""
        return f"{self.base}/devices"

    @property
    def login(self) -> str:
        """The URL of the login the agent offers (plain text), retained; empty when none is."""
        return f"{self.base}/login"

    @property
    def alert(self) -> str:
        """Events a person should hear about, not retained."""
        return f"{self.base}/alert"

    @property
    def requests(self) -> str:
        """Subscription filter for every request verb."""
        return f"{self.base}/request/+"

    def request(self, verb: str) -> str:
        """Where a request with this verb is sent."""
        return f"{self.base}/request/{verb}"

    def response(self, verb: str) -> str:
        """Where the answer to a request with this verb is published."""
        return f"{self.base}/response/{verb}"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a request topic, or None when the topic is not a request."""
        prefix = f"{self.base}/request/"
        if not topic.startswith(prefix):
            return None
        return topic[len(prefix) :]


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
        "kind": kind,
    }


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


def token_sha256(access_token: str) -> str:
    """The hex SHA-256 by which a consumer names the access token it holds."""
    return hashlib.sha256(access_token.encode()).hexdigest()


def rejected_request(access_token: str, *, transaction: Any = None) -> dict[str, Any]:
    """The refresh request of a consumer whose token Spotify refused (401)."""
    body: dict[str, Any] = {"reason": REASON_REJECTED, "token_sha256": token_sha256(access_token)}
    if transaction is not None:
        body["transaction"] = transaction
    return body
