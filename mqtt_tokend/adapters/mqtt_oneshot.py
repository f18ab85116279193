"""The command line's MQTT connection: `oneshot` connects, yields a `OneShot`, disconnects.

It shares `adapters.mqtt`'s client set-up and ids; the two are the only modules that import paho.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_tokend.adapters.broker_errors import LOGIN_REFUSALS, describe, refused, unreachable
from mqtt_tokend.adapters.mqtt import QOS, make_client, message_of, session_id
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.wording import forced_client_id_warning
from mqtt_tokend.errors import BrokerError

_LOG = logging.getLogger(__name__)


class OneShot:
    """A short-lived, connected client for the command line."""

    def __init__(self, client: paho.Client, config: MqttConfig) -> None:
        self._client = client
        self._config = config
        self._lock = threading.Condition()
        self._messages: dict[str, Message] = {}
        self._acks: set[int] = set()
        self.listener: Callable[[Message], None] | None = None  # sees every message
        self.forced_client_id = False  # the broker gave this client the user name as its id
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe

    def _handle_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        message = message_of(msg)
        with self._lock:
            self._messages[msg.topic] = message
            self._lock.notify_all()
        if self.listener is not None:
            self.listener(message)

    def _handle_subscribe(
        self, _client: paho.Client, _userdata: Any, mid: int, _codes: Any, _props: Any
    ) -> None:
        with self._lock:
            self._acks.add(mid)
            self._lock.notify_all()

    def _subscribe(self, topics: Sequence[str], deadline: float) -> None:
        # QoS 0 subscriptions: retained messages then arrive ahead of any later SUBACK.
        result, mid = self._client.subscribe([(t, 0) for t in topics])
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerError(f"subscribe failed: {paho.error_string(result)}")
        self._wait(lambda: mid in self._acks, deadline, "the broker did not confirm a subscription")

    def retained(self, topics: Sequence[str], *, timeout: float) -> dict[str, Message]:
        """The retained messages now on `topics` (absent topics are left out)."""
        deadline = time.monotonic() + timeout
        self._subscribe(topics, deadline)
        # A second subscription is a barrier: its SUBACK follows the first one's retained
        # messages on the same connection, so afterwards everything retained has arrived.
        self._subscribe([f"mqtt-tokend/barrier/{uuid.uuid4().hex}"], deadline)
        with self._lock:
            return {t: m for t, m in self._messages.items() if t in topics}

    def wait_for(self, topic: str, accept: Callable[[Message], bool], *, timeout: float) -> Message:
        """Block until a message on `topic` is accepted, or raise BrokerError at the timeout."""
        deadline = time.monotonic() + timeout
        found: list[Message] = []

        def ready() -> bool:
            message = self._messages.get(topic)
            if message is not None and accept(message):
                found.append(message)
                return True
            return False

        self._wait(ready, deadline, f"nothing acceptable arrived on {topic} in {timeout:g} s")
        return found[0]

    def subscribe(self, topics: Sequence[str], *, timeout: float) -> None:
        """Subscribe and wait for the broker's confirmation."""
        self._subscribe(topics, time.monotonic() + timeout)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        retain: bool = False,
        timeout: float = 5.0,
    ) -> None:
        """Publish at QoS 1 and wait for the broker to take it."""
        props = None
        if self._config.protocol == 5 and response_topic:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = response_topic
            if correlation_data is not None:
                props.CorrelationData = correlation_data
        info = self._client.publish(topic, payload, qos=QOS, retain=retain, properties=props)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as err:
            raise BrokerError(f"publish to {topic} failed: {err}") from err
        if not info.is_published():
            raise BrokerError(f"the broker did not acknowledge the publish to {topic}")

    def _wait(self, ready: Callable[[], bool], deadline: float, failure: str) -> None:
        with self._lock:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0 or not self._client.is_connected():
                    raise BrokerError(failure)
                self._lock.wait(min(left, 0.25))


def _connect(
    config: MqttConfig, client_id: str, timeout: float
) -> tuple[paho.Client, ReasonCode, str | None]:
    """A started client, the CONNACK's reason and its MQTT 5 Assigned Client Identifier."""
    client = make_client(config, client_id)
    answers: list[tuple[ReasonCode, str | None]] = []
    done = threading.Event()

    def on_connect(_c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, props: Any) -> None:
        assigned = getattr(props, "AssignedClientIdentifier", None) if props else None
        answers.append((rc, assigned if isinstance(assigned, str) else None))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(config.host, config.port, config.keepalive)
    except OSError as err:  # ssl.SSLError included
        raise unreachable(config, err) from err
    client.loop_start()
    if not done.wait(timeout):
        _close(client)
        raise BrokerError(f"the broker at {describe(config)} did not answer in {timeout:g} s")
    return client, *answers[0]


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


@contextmanager
def oneshot(config: MqttConfig, *, timeout: float = 5.0, purpose: str = "cli") -> Iterator[OneShot]:
    """Connect, yield a OneShot, disconnect; BrokerError with a clear reason on failure."""
    # Under MQTT 5 the broker picks the id and names it in CONNACK: one that forces the user
    # name shows itself (and is warned of); one that wants an id from us gets a random one.
    ids = ["", session_id(purpose)] if config.protocol == 5 else [session_id(purpose)]
    for client_id in ids:
        client, reason, assigned = _connect(config, client_id, timeout)
        if reason.is_failure:
            _close(client)
            if client_id == "" and reason.getName() not in LOGIN_REFUSALS:
                continue  # 0x85, or Mosquitto's 0x80: it wants an id from us
            raise refused(config, reason.getName())
        break
    session = OneShot(client, config)
    session.forced_client_id = bool(config.username) and assigned == config.username
    if session.forced_client_id:
        _LOG.warning("broker %s: %s", describe(config), forced_client_id_warning(config.username))
    try:
        yield session
    finally:
        _close(client)
