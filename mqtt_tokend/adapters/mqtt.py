"""The MQTT adapter: with its command-line half (`adapters.mqtt_oneshot`), the only module that
imports paho.

`MqttLink` is a long-lived connection (connects in the background, reconnects, resubscribes,
Last Will, TCP_NODELAY): the agent's, and the token consumer's. The command line's short-lived
connection, `oneshot`, builds its client with `make_client` here.

Each connection has a client id of its own that nobody can guess (`session_id`, or the broker's
choice): a broker ends the session of a client id that connects again, so shared ids kick each
other off and a guessable one lets a stranger take the agent's session.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_tokend.adapters.broker_errors import describe, refused
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.contract.messages import Message, Reply
from mqtt_tokend.core.gate import Throttle

_LOG = logging.getLogger(__name__)

QOS = 1
RECONNECT_MIN = 1
RECONNECT_MAX = 30
OVERSIZE_LOG_INTERVAL = 60.0  # seconds between two log lines about dropped large messages


def session_id(purpose: str) -> str:
    """A client id for one connection that no other client can guess or share."""
    return f"mqtt-tokend-{purpose}-{secrets.token_hex(12)}"


def _set_nodelay(_client: paho.Client, _userdata: Any, sock: Any) -> None:
    # Small packets on loopback otherwise wait ~40 ms for the peer's delayed ACK (Nagle).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        _LOG.debug("TCP_NODELAY not available on this socket")


def make_client(config: MqttConfig, client_id: str) -> paho.Client:
    protocol = MQTTProtocolVersion.MQTTv5 if config.protocol == 5 else MQTTProtocolVersion.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls:
        client.tls_set(
            ca_certs=str(config.ca_file) if config.ca_file else None,
            certfile=str(config.cert_file) if config.cert_file else None,
            keyfile=str(config.key_file) if config.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.on_socket_open = _set_nodelay
    return client


def message_of(msg: paho.MQTTMessage) -> Message:
    props = getattr(msg, "properties", None)
    response_topic = getattr(props, "ResponseTopic", None) if props else None
    correlation = getattr(props, "CorrelationData", None) if props else None
    return Message(
        topic=msg.topic,
        payload=bytes(msg.payload),
        retain=bool(msg.retain),
        response_topic=response_topic if isinstance(response_topic, str) else None,
        correlation_data=bytes(correlation) if correlation is not None else None,
    )


def _publish_properties(
    protocol: int, *, expiry: int | None, reply: Reply | None = None
) -> Properties | None:
    if protocol != 5 or (expiry is None and (reply is None or reply.correlation_data is None)):
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if expiry is not None:
        props.MessageExpiryInterval = max(1, int(expiry))
    if reply is not None and reply.correlation_data is not None:
        props.CorrelationData = reply.correlation_data
    return props


def _stale(message: paho.MQTTMessage) -> bool:
    expiry = getattr(message.properties, "MessageExpiryInterval", None)
    return bool(message.retain) or expiry is not None


def _forget_stale(client: paho.Client) -> None:
    """Drop the retained and expiring messages the last connection left unacknowledged.

    paho resends them after `on_connect`, with the Message Expiry Interval they were sent with:
    a token message would reach the broker outliving its token, and would land after (and over)
    the fresh state that `on_connected` republishes. paho has no public call for this, so it
    reaches into the client's outgoing queue; tests/integration/test_mqtt_link.py fails if that
    queue changes shape.
    """
    mutex = getattr(client, "_out_message_mutex", None)
    queue = getattr(client, "_out_messages", None)
    if mutex is None or not isinstance(queue, dict):
        _LOG.warning("this paho-mqtt cannot drop stale messages: a reconnect may resend them")
        return
    with mutex:
        for mid in [mid for mid, message in queue.items() if _stale(message)]:
            del queue[mid]


class MqttLink:
    """A long-lived connection: background connect and reconnect, Last Will, subscriptions."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        will: tuple[str, bytes] | None,
        subscriptions: Sequence[str],
        on_connected: Callable[[], None],
        on_message: Callable[[Message], None],
        on_disconnected: Callable[[], None] | None = None,
        max_packet: int | None = None,
    ) -> None:
        """`max_packet` bounds what the broker may deliver: announced as the MQTT 5 Maximum
        Packet Size in CONNECT (the broker then drops anything larger for us), and under
        3.1.1 a larger payload is dropped before `on_message` sees it."""
        self._config = config
        self._on_disconnected = on_disconnected
        self._max_packet = max_packet
        self._oversize_logs = Throttle(OVERSIZE_LOG_INTERVAL)
        self._dropped = 0
        self._subscriptions = list(subscriptions)
        self._on_connected = on_connected
        self._on_message = on_message
        self._connected = threading.Event()
        self._stopping = False  # a disconnect we asked for is not worth a warning
        self._last_error: str | None = None
        self._client = make_client(config, client_id)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=QOS, retain=True)
        self._client.reconnect_delay_set(min_delay=RECONNECT_MIN, max_delay=RECONNECT_MAX)
        self._client.on_connect = self._handle_connect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    @property
    def connected(self) -> bool:
        """True while the broker has accepted us."""
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried forever."""
        props = None
        if self._config.protocol == 5 and self._max_packet is not None:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.MaximumPacketSize = self._max_packet
        self._client.connect_async(
            self._config.host, self._config.port, self._config.keepalive, properties=props
        )
        self._client.loop_start()

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt failed or the connection dropped; None once connected."""
        return self._last_error

    def send(self, topic: str, payload: bytes | str) -> bool:
        """Publish a request (QoS 1, not retained) without waiting; False when not connected."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=QOS, retain=False)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        retain: bool,
        expiry: int | None = None,
        reply: Reply | None = None,
    ) -> None:
        """Publish at QoS 1; while disconnected nothing is queued: the reconnect republishes."""
        if not self._connected.is_set():
            return
        props = _publish_properties(self._config.protocol, expiry=expiry, reply=reply)
        try:
            info = self._client.publish(topic, payload, qos=QOS, retain=retain, properties=props)
        except ValueError as err:  # a wildcard or empty topic, e.g. a bad MQTT 5 Response Topic
            _LOG.warning("not publishing to %r: %s", topic[:200], err)
            return
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            _LOG.warning("publish to %s failed: %s", topic, paho.error_string(info.rc))

    def stop(self, *, last: Sequence[tuple[str, bytes]] = (), timeout: float = 3.0) -> None:
        """Publish the last retained messages (waiting for them), disconnect, stop the loop."""
        if self._connected.is_set():
            infos = [self._client.publish(t, p, qos=QOS, retain=True) for t, p in last]
            deadline = time.monotonic() + timeout
            for info in infos:
                try:
                    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                except (RuntimeError, ValueError):
                    _LOG.warning("could not publish the final messages before stopping")
                    break
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def _handle_connect(
        self, client: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            self._last_error = str(refused(self._config, rc.getName()))
            _LOG.warning("%s", self._last_error)
            return
        self._last_error = None
        _LOG.info("connected to the broker at %s", describe(self._config))
        _forget_stale(client)
        for topic in self._subscriptions:
            client.subscribe(topic, qos=QOS)
        self._connected.set()
        self._on_connected()

    def _handle_disconnect(
        self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if self._stopping:
            _LOG.info("disconnected from the broker")
        elif self._connected.is_set():
            self._last_error = f"disconnected ({rc})"
            _LOG.warning("disconnected from the broker (%s); reconnecting", rc)
        self._connected.clear()
        if self._on_disconnected is not None and not self._stopping:
            self._on_disconnected()

    def _handle_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self._last_error = "cannot reach it (refused, unreachable, or a TLS failure)"
        _LOG.debug("cannot reach the broker at %s; retrying", describe(self._config))

    def _handle_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if self._max_packet is not None and len(msg.payload) > self._max_packet:
            self._drop_oversized(msg)
            return
        try:
            self._on_message(message_of(msg))
        except Exception:
            _LOG.exception("a message on %s could not be handled", msg.topic)

    def _drop_oversized(self, msg: paho.MQTTMessage) -> None:
        self._dropped += 1
        if self._oversize_logs.allow(time.monotonic()):
            what = (self._dropped, self._max_packet, msg.topic[:200])
            _LOG.warning("dropped %d message(s) over %d bytes (the last on %s)", *what)
            self._dropped = 0
