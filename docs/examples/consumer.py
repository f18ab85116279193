"""A consumer of mqtt-tokend in Python, from the published contract alone (docs/consumers.md).

It needs only paho-mqtt (2.x) and cryptography, not the mqtt-tokend package (which offers
`mqtt_tokend.consumer.TokenConsumer` for the same). Usage:

    python consumer.py token      # print a valid access token
    python consumer.py rejected   # report the current token as refused (a 401); print the new one
    python consumer.py refresh    # ask for a refresh; print the reply's JSON

Settings come from the environment: MQTT_HOST (127.0.0.1), MQTT_PORT (1883), MQTT_USERNAME,
MQTT_PASSWORD, MQTT_PROTOCOL (5, or 3 for MQTT 3.1.1), TOKEND_BASE (lofi/spotify),
TOKEND_KEY_FILE (/etc/mqtt-tokend/fernet.key).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.fernet import Fernet, MultiFernet
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

BASE = os.environ.get("TOKEND_BASE", "lofi/spotify")
KEY_FILE = Path(os.environ.get("TOKEND_KEY_FILE", "/etc/mqtt-tokend/fernet.key"))
MQTT5 = os.environ.get("MQTT_PROTOCOL", "5") != "3"
MARGIN = 5.0  # seconds: a token this close to its expiry is not worth using
WAIT = 10.0  # seconds to wait for the broker and the agent


def decrypt(payload: bytes) -> dict[str, Any]:
    """The token object inside a retained payload. Never a TTL: a retained token may be
    most of an hour old and still good; its own `expires_at` says. Every line of the key
    file is a key (rotation); the file is read on each call, so a rotated key is picked up."""
    lines = KEY_FILE.read_text(encoding="ascii").split()
    keys = MultiFernet([Fernet(line) for line in lines if not line.startswith("#")])
    token: dict[str, Any] = json.loads(keys.decrypt(payload))  # no ttl argument, on purpose
    return token


def usable(token: dict[str, Any]) -> bool:
    return float(token["expires_at"]) - MARGIN > time.time()


class Agent:
    """One MQTT connection to the broker, with TCP_NODELAY, and the agent's topics."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.token_payload: bytes | None = None  # the newest message on <base>/token
        self.replies: dict[str, dict[str, Any]] = {}  # by transaction
        self.subscribed: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"consumer-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5 if MQTT5 else mqtt.MQTTv311,
        )
        # Small packets wait for the peer's delayed ACK (up to 40 ms) without TCP_NODELAY.
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        if os.environ.get("MQTT_USERNAME"):
            self.client.username_pw_set(os.environ["MQTT_USERNAME"], os.environ["MQTT_PASSWORD"])
        host, port = os.environ.get("MQTT_HOST", "127.0.0.1"), os.environ.get("MQTT_PORT", "1883")
        self.client.connect(host, int(port), keepalive=30)
        self.client.loop_start()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self.changed:
            self.subscribed.add(mid)
            self.changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.changed:
            if message.topic == f"{BASE}/token":
                self.token_payload = message.payload
            else:  # a reply; with MQTT 3.1.1, everyone's replies: keep those with a transaction
                reply = json.loads(message.payload)
                if isinstance(reply, dict) and isinstance(reply.get("transaction"), str):
                    self.replies[reply["transaction"]] = reply
            self.changed.notify_all()

    def wait(self, ready: Callable[[], Any]) -> Any:
        with self.changed:
            if not self.changed.wait_for(ready, timeout=WAIT):
                raise SystemExit("timed out: is the agent running and may this user read it?")
            return ready()

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        self.wait(lambda: mid in self.subscribed)

    def token(self, *, other_than: str | None = None) -> dict[str, Any]:
        """The retained token, decrypted; waits for a usable one (and a new one if asked)."""

        def fresh() -> dict[str, Any] | None:
            if not self.token_payload:  # none yet, or empty: no valid token right now
                return None
            token = decrypt(self.token_payload)
            return token if usable(token) and token["access_token"] != other_than else None

        token: dict[str, Any] = self.wait(fresh)
        return token

    def refresh(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ask for a refresh and wait for the reply to this request only."""
        transaction = uuid.uuid4().hex  # unique across every client, not just this one
        properties = None
        if MQTT5:  # a reply topic of our own, and Correlation Data the agent echoes
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = f"{BASE}/response/refresh/{transaction}"
            properties.CorrelationData = transaction.encode()
            self.subscribe(properties.ResponseTopic)
        else:  # MQTT 3.1.1: the shared reply topic; ours is the one with our transaction
            self.subscribe(f"{BASE}/response/refresh")
        payload = json.dumps({"transaction": transaction} | body)
        self.client.publish(f"{BASE}/request/refresh", payload, qos=1, properties=properties)
        reply: dict[str, Any] = self.wait(lambda: self.replies.get(transaction))
        return reply


def main(mode: str) -> int:
    agent = Agent()
    agent.subscribe(f"{BASE}/token")
    token = agent.token()
    if mode == "token":
        print(token["access_token"])
    elif mode == "rejected":  # Spotify answered 401 to this token: tell the agent, take the new one
        sha = hashlib.sha256(token["access_token"].encode()).hexdigest()
        reply = agent.refresh({"reason": "rejected", "token_sha256": sha})
        print(json.dumps(reply["data"]["refreshed"]))
        print(agent.token(other_than=token["access_token"])["access_token"])
    elif mode == "refresh":
        print(json.dumps(agent.refresh({})))
    else:
        raise SystemExit(f"unknown mode {mode!r}: token, rejected or refresh")
    agent.client.disconnect()
    agent.client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "token"))
