"""Taking the token from the broker: decrypt, judge expiry, wait for a valid one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mqtt_tokend.config import Config
from mqtt_tokend.crypto import TokenCipher
from mqtt_tokend.errors import BrokerError, CryptoError
from mqtt_tokend.mqtt import Message, oneshot
from mqtt_tokend.topics import Topics

EXPIRY_MARGIN = 5.0  # a token this close to expiry is not handed out (or a quarter of its life)


def decode_token(cipher: TokenCipher, payload: bytes, *, now: float) -> dict[str, Any] | None:
    """The token object inside a retained payload; None when it is expired or cleared.

    Raises CryptoError when the payload does not decrypt or is not a token.
    """
    if not payload:
        return None
    token = cipher.decrypt_json(payload)
    expires_at = token.get("expires_at")
    issued_at = token.get("issued_at", expires_at)
    if not isinstance(token.get("access_token"), str) or not isinstance(expires_at, int | float):
        raise CryptoError("the decrypted payload is not a token object")
    lifetime = expires_at - issued_at if isinstance(issued_at, int | float) else 0.0
    if expires_at - min(EXPIRY_MARGIN, lifetime / 4) <= now:
        return None
    return token


def fetch_token(
    config: Config,
    *,
    app: bool = False,
    timeout: float = 10.0,
    cipher: TokenCipher | None = None,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """A valid token from the broker, waiting up to `timeout` for one to be published."""
    cipher = cipher or TokenCipher.from_file(config.agent.key_file)
    topics = Topics(config.mqtt.base_topic)
    topic = topics.token_app if app else topics.token
    deadline = time.monotonic() + timeout
    with oneshot(config.mqtt, timeout=timeout, purpose="get-token") as session:
        retained = session.retained([topic], timeout=timeout).get(topic)
        if retained is not None:
            token = decode_token(cipher, retained.payload, now=now())
            if token is not None:
                return token
        found: list[dict[str, Any]] = []

        def valid(message: Message) -> bool:
            token = decode_token(cipher, message.payload, now=now())
            if token is not None:
                found.append(token)
            return token is not None

        try:
            session.wait_for(topic, valid, timeout=max(0.0, deadline - time.monotonic()))
        except BrokerError:
            raise BrokerError(
                f"no valid token on {topic} within {timeout:g} s: is the agent running and "
                "logged in? (`mqtt-tokend status`)"
            ) from None
        return found[0]
