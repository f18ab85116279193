"""A recording MQTT subscriber for integration tests (plain paho, independent of the package)."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

T = TypeVar("T")

# The deadlines written in the tests suit a quiet machine; on a busy one (CI beside other jobs)
# everything may take several times as long. Each wait is stretched by PATIENCE: a passing test
# waits no longer, only a failure takes longer to report.
PATIENCE = float(os.environ.get("MQTT_TOKEND_TEST_PATIENCE", "3"))


def patient(timeout: float) -> float:
    """`timeout` stretched for a busy machine."""
    return timeout * PATIENCE


def wait_until(condition: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds
    (stretched by PATIENCE)."""
    timeout = patient(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    at: float
    expiry: int | None
    qos: int = 1
    wall: float = 0.0  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """Subscribes to a filter (MQTT 5) and keeps every message with its arrival time.

    By default `retain` is set only on retained messages replayed at subscription. With
    `retain_as_published` it is the publisher's flag, and with `qos=2` a message keeps the QoS
    it was published with: what the contract checker needs. `on_seen` runs on every message.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic_filter: str,
        *,
        qos: int = 1,
        retain_as_published: bool = False,
        on_seen: Callable[[Seen], None] | None = None,
    ) -> None:
        self.host, self.port, self.filter = host, port, topic_filter
        self._options = SubscribeOptions(qos=qos, retainAsPublished=retain_as_published)
        self._on_seen = on_seen
        self._lock = threading.Condition()
        self.messages: list[Seen] = []
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"watch-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(0.1, 0.5)

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        client.subscribe(self.filter, options=self._options)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        expiry = getattr(props, "MessageExpiryInterval", None)
        seen = Seen(
            msg.topic,
            bytes(msg.payload),
            bool(msg.retain),
            time.monotonic(),
            expiry,
            qos=msg.qos,
            wall=time.time(),
        )
        if self._on_seen is not None:
            self._on_seen(seen)
        with self._lock:
            self.messages.append(seen)
            self._lock.notify_all()

    def __enter__(self) -> Watcher:
        self._client.connect(self.host, self.port, 5)
        self._client.loop_start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _v: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def on(self, topic: str) -> list[Seen]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(
        self,
        topic: str,
        accept: Callable[[Seen], bool] = lambda _m: True,
        *,
        timeout: float = 10.0,
        after: float = 0.0,
    ) -> Seen:
        """The first message on `topic` that arrived after `after` (monotonic) and is accepted
        (`timeout` stretched by PATIENCE)."""
        timeout = patient(timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.messages:
                    if message.topic == topic and message.at >= after and accept(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting on {topic}")
                self._lock.wait(left)
