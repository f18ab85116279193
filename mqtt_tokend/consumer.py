"""Taking the token from the broker: decrypt, judge expiry, wait for a valid one.

`TokenConsumer` is the library for long-running consumers (a player, a button script): it
stays subscribed, reconnects, decrypts, calls back on every new token and tells the agent
when Spotify rejected one. `fetch_token` is the one-shot form behind `mqtt-tokend get-token`.
Only paho and cryptography are imported (through the package's light modules), never
`requests`, so a script starts fast.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from mqtt_tokend.adapters.broker_errors import describe
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.files import signature
from mqtt_tokend.adapters.mqtt import MqttLink, session_id
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.config import AgentConfig, Config, MqttConfig
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wire import Token, new_transaction, rejected_request, usable
from mqtt_tokend.errors import BrokerError, ConfigError, CryptoError, TokendError

__all__ = ["Token", "TokenConsumer", "decode_token", "fetch_token", "usable"]

_LOG = logging.getLogger(__name__)


def decode_token(cipher: TokenCipher, payload: bytes, *, now: float) -> Token | None:
    """The usable token inside a retained payload; None when it is expired or cleared.

    Raises CryptoError when the payload does not decrypt or is not a token.
    """
    if not payload:
        return None
    token = Token.from_plaintext(cipher.decrypt_json(payload))
    return token if token.usable(now) else None


class TokenConsumer:
    """Keeps the newest valid token from the broker: subscribe, decrypt, call back, reconnect.

    Give it a loaded `Config`, or the broker and key file directly (keywords override the
    config). `token()` blocks until a valid token is there; `on_change` runs on the MQTT
    thread with each new token (keep it short); `report_rejected()` tells the agent that
    Spotify answered 401. The key file is read again when a payload does not decrypt, so a
    `mqtt-tokend rotate-key` does not stop a consumer that reads the agent's key file.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        base_topic: str | None = None,
        key_file: str | Path | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool | None = None,
        ca_file: str | Path | None = None,
        protocol: int | None = None,
        app: bool = False,
        on_change: Callable[[Token], None] | None = None,
        cipher: TokenCipher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        mqtt = config.mqtt if config is not None else MqttConfig()
        overrides: dict[str, Any] = {
            "host": host,
            "port": port,
            "base_topic": base_topic,
            "username": username,
            "password": password,
            "tls": tls,
            "ca_file": Path(ca_file) if ca_file is not None else None,
            "protocol": protocol,
        }
        self.mqtt = replace(mqtt, **{k: v for k, v in overrides.items() if v is not None})
        agent = config.agent if config is not None else AgentConfig()
        self._key_file = Path(key_file) if key_file is not None else agent.key_file
        self._cipher = cipher
        self._key_signature: tuple[int, int, int] | None = None
        topics = Topics(self.mqtt.base_topic)
        self.topic = topics.token_app if app else topics.token
        self._request_topic = topics.request("refresh")
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Condition()
        self._latest: Token | None = None
        self._rejected: set[str] = set()
        self._error: TokendError | None = None
        self._link: MqttLink | None = None

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> TokenConsumer:
        """Read the key file and connect in the background (a broker that is down is retried)."""
        if self._link is not None:
            return self
        if self._cipher is None:
            self._cipher = self._read_keys()
        self._link = MqttLink(
            self.mqtt,
            client_id=session_id("consumer"),
            will=None,
            subscriptions=[self.topic],
            on_connected=lambda: None,  # the broker resends the retained token on subscribe
            on_message=self.receive,
        )
        self._link.start()
        return self

    def attach(self, link: MqttLink) -> TokenConsumer:
        """Use a connection the caller owns, starts and stops, and that passes this consumer the
        messages on `self.topic` (`receive`): one connection for several consumers, as a broker
        that names sessions after the user requires of one process."""
        if self._cipher is None:
            self._cipher = self._read_keys()
        self._link = link
        return self

    def stop(self) -> None:
        """Disconnect."""
        link, self._link = self._link, None
        if link is not None:
            link.stop()

    def __enter__(self) -> TokenConsumer:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _v: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        """True while the broker has accepted us."""
        return self._link is not None and self._link.connected

    @property
    def last_error(self) -> TokendError | None:
        """Why the last payload on the topic was unusable (wrong key...); None once one was."""
        with self._lock:
            return self._error

    # ---- what consumers call ------------------------------------------------------------

    def current(self) -> Token | None:
        """The valid token held now, or None (never blocks)."""
        with self._lock:
            return self._valid()

    def token(self, timeout: float = 10.0) -> Token:
        """A valid token, waiting up to `timeout` s for one; BrokerError or CryptoError if none."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                token = self._valid()
                if token is not None:
                    return token
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._why_none(timeout)
                self._lock.wait(left)

    def report_rejected(self, token: Token | None = None) -> bool:
        """Tell the agent Spotify refused `token` (default: the one held); False if not sent.

        The token is not handed out again: `token()` then waits for its successor.
        """
        with self._lock:
            token = token or self._latest
            if token is None:
                return False
            self._rejected.add(token.sha256)
        link = self._link
        body = json.dumps(rejected_request(token.access_token, transaction=new_transaction()))
        sent = link is not None and link.send(self._request_topic, body)
        _LOG.info("reported a rejected token to the agent (%s)", "sent" if sent else "not sent")
        return sent

    # ---- the MQTT side --------------------------------------------------------------------

    def receive(self, message: Message) -> None:
        """Handle one message on the token topic (called on the MQTT thread)."""
        if message.topic != self.topic:
            return
        if not message.payload:
            with self._lock:
                self._latest = None  # the agent cleared it: it has no valid token
            return
        try:
            token = Token.from_plaintext(self._decrypt(message.payload))
        except CryptoError as err:
            _LOG.warning("the token on %s is unusable: %s", self.topic, err)
            with self._lock:
                self._error = err
                self._lock.notify_all()
            return
        with self._lock:
            new = self._latest is None or self._latest.access_token != token.access_token
            self._latest = token
            self._error = None
            self._rejected = {sha for sha in self._rejected if sha == token.sha256}
            fresh = new and token.usable(self._clock()) and token.sha256 not in self._rejected
            self._lock.notify_all()
        if fresh and self._on_change is not None:
            self._on_change(token)

    def _decrypt(self, payload: bytes) -> dict[str, Any]:
        cipher = self._cipher or self._read_keys()
        try:
            return cipher.decrypt_json(payload)
        except CryptoError:
            now_signature = signature(self._key_file)
            if now_signature is None or now_signature == self._key_signature:
                raise
            return self._read_keys().decrypt_json(payload)  # the key file changed: a rotation

    def _read_keys(self) -> TokenCipher:
        key_signature = signature(self._key_file)
        cipher = TokenCipher.from_file(self._key_file)
        self._cipher, self._key_signature = cipher, key_signature
        return cipher

    def _valid(self) -> Token | None:
        token = self._latest
        if token is None or token.sha256 in self._rejected or not token.usable(self._clock()):
            return None
        return token

    def _why_none(self, timeout: float) -> TokendError:
        if self._error is not None:
            return self._error
        link = self._link
        if link is None or not link.connected:
            why = (link.last_error if link else None) or "no connection yet"
            return BrokerError(
                f"cannot use the MQTT broker at {describe(self.mqtt)}: {why}; is Mosquitto "
                "running, and are mqtt.username and mqtt.password right?"
            )
        if self._latest is not None and self._latest.sha256 in self._rejected:
            return BrokerError(
                f"no token replaced the rejected one on {self.topic} within {timeout:g} s: "
                "is the agent running? (`mqtt-tokend status`)"
            )
        return BrokerError(
            f"no valid token on {self.topic} within {timeout:g} s: is the agent running and "
            "logged in? (`mqtt-tokend status`)"
        )


def fetch_token(
    config: Config,
    *,
    app: bool = False,
    timeout: float = 10.0,
    cipher: TokenCipher | None = None,
    now: Callable[[], float] = time.time,
) -> Token:
    """A valid token from the broker, waiting up to `timeout` for one to be published."""
    if app and not config.spotify.client_secret:
        raise ConfigError(
            "an app token needs spotify.client_secret: the agent publishes one only for a "
            "client with a secret. Add it to the configuration, or drop --app for the user token"
        )
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
        found: list[Token] = []

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
