"""Everything the agent publishes, in one place: topics, payload shapes, retain and expiry."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.contract.topics import ONLINE, Topics
from mqtt_tokend.contract.wire import TokenKind, response_payload, token_plaintext
from mqtt_tokend.daemon.ports import Publisher

_LOG = logging.getLogger(__name__)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


class Broadcaster:
    """Turns the agent's state into MQTT messages."""

    def __init__(self, publisher: Publisher, topics: Topics, cipher: TokenCipher) -> None:
        self._publisher = publisher
        self.topics = topics
        self._cipher = cipher

    def use_cipher(self, cipher: TokenCipher) -> None:
        """Encrypt with a rotated key file's primary key from now on."""
        self._cipher = cipher

    def online(self) -> None:
        """`online` on the availability topic (the Last Will says `offline`)."""
        self._publisher.publish(self.topics.availability, ONLINE, retain=True)

    def token(
        self,
        *,
        kind: TokenKind,
        access_token: str | None,
        scope: str = "",
        expires_at: float = 0.0,
        issued_at: float = 0.0,
        now: float,
    ) -> None:
        """The encrypted token, retained, expiring with it; an empty payload clears it."""
        topic = self.topics.token_app if kind == TokenKind.APP else self.topics.token
        left = expires_at - now
        if access_token is None or left <= 0:
            self._publisher.publish(topic, b"", retain=True)
            return
        plain = token_plaintext(
            access_token=access_token,
            scope=scope,
            expires_at=expires_at,
            issued_at=issued_at,
            kind=kind,
        )
        expiry = math.ceil(left)
        self._publisher.publish(topic, self._cipher.encrypt_json(plain), retain=True, expiry=expiry)
        _LOG.info("published the %s token on %s (expires in %d s)", kind, topic, expiry)

    def health(self, payload: dict[str, Any]) -> None:
        """The health record, retained."""
        self._publisher.publish(self.topics.health, _json(payload), retain=True)

    def login(self, url: str | None) -> None:
        """The offered login's URL, retained; an empty payload clears it (no login offered)."""
        self._publisher.publish(self.topics.login, url or b"", retain=True)

    def devices(self, devices: list[dict[str, Any]], *, now: float) -> None:
        """The account's Spotify Connect devices, retained."""
        body = {"devices": devices, "at": round(now, 3)}
        self._publisher.publish(self.topics.devices, _json(body), retain=True)

    def alert(self, alert: Alert) -> None:
        """An event for people (not retained)."""
        _LOG.warning("alert %s: %s", alert.event, alert.message)
        self._publisher.publish(self.topics.alert, _json(alert.to_payload()), retain=False)

    def respond(
        self,
        reply: Reply,
        *,
        ok: bool,
        data: dict[str, Any] | None = None,
        error: str | None = None,
        transaction: Any = None,
    ) -> None:
        """The answer to a request, on its response topic with its correlation data."""
        payload = response_payload(ok=ok, data=data, error=error, transaction=transaction)
        self._publisher.publish(reply.topic, _json(payload), retain=False, reply=reply)

    def raw(self, topic: str, payload: str | bytes, *, retain: bool) -> None:
        """Anything else (Home Assistant discovery)."""
        self._publisher.publish(topic, payload, retain=retain)
