"""The shipped broker config with an observer, MQTT clients per account, and the agent on it:
what the hostile-broker tests (test_hostile_broker.py) share."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.deploy.conftest import MOSQUITTO, WAIT, Broker, start_broker, stop_broker
from tests.integration.conftest import AgentProcess, write_agent_config
from tests.integration.watch import patient, wait_until

BASE = "lofi/spotify"
OBSERVER = "observer"  # a test-only account that reads everything; the shipped ones are as shipped
OBSERVER_PASSWORD = "observer-secret"


def shipped_broker(directory: Path) -> Broker:
    """Mosquitto from deploy/mosquitto/ (only ports and paths changed), plus an observer
    account added to the password file and the ACL and loaded with SIGHUP."""
    broker = start_broker(directory)
    auth = directory / "auth"
    owner = auth.joinpath("acl").stat()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(auth / "passwd"), OBSERVER, OBSERVER_PASSWORD],
        check=True,
        capture_output=True,
        timeout=WAIT,
    )
    with (auth / "acl").open("a") as acl:
        acl.write(f"\nuser {OBSERVER}\ntopic read #\n")
    for name in ("passwd", "acl"):
        os.chown(auth / name, owner.st_uid, owner.st_gid)
    broker.passwords[OBSERVER] = OBSERVER_PASSWORD
    broker.process.send_signal(signal.SIGHUP)
    wait_until(lambda: _accepts(broker, OBSERVER), timeout=WAIT, what="the observer account")
    return broker


@contextmanager
def shipped_in_tmp() -> Iterator[Broker]:
    """`shipped_broker` in a directory of its own in the system's temp directory (Mosquitto
    reads its files after dropping root, and pytest's tmp_path is private), removed after."""
    directory = Path(tempfile.mkdtemp(prefix="mqtt-tokend-hostile-"))
    directory.chmod(0o755)
    try:
        broker = shipped_broker(directory / "broker")
        try:
            yield broker
        finally:
            stop_broker(broker)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def connected(broker: Broker, *topics: str) -> Iterator[dict[str, Client]]:
    """Connected clients of the observer (subscribed to `topics`), the player and Home
    Assistant, closed afterwards."""
    made = {user: Client(broker, user) for user in (OBSERVER, "lofi-player", "homeassistant")}
    try:
        for client in made.values():
            client.connect()
        made[OBSERVER].subscribe(*topics)
        yield made
    finally:
        for client in made.values():
            client.close()


def _accepts(broker: Broker, user: str) -> bool:
    client = Client(broker, user)
    try:
        return client.try_connect()
    finally:
        client.close()


class Client:
    """One account's MQTT connection; records what it receives."""

    def __init__(self, broker: Broker, user: str, *, protocol: int = 5) -> None:
        self.broker = broker
        self.user = user
        self._cond = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.counts: dict[str, int] = {}  # messages received per topic: cheap to wait on
        self._connack: Any = None
        self._subacks: set[int] = set()
        version = MQTTProtocolVersion.MQTTv5 if protocol == 5 else MQTTProtocolVersion.MQTTv311
        self._protocol = protocol
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:8]}",
            protocol=version,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.username_pw_set(user, broker.passwords[user])
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.client.disconnect()
        with self._cond:
            self._connack = reason
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.counts[msg.topic] = self.counts.get(msg.topic, 0) + 1
            self._cond.notify_all()

    def try_connect(self) -> bool:
        """Connect; False when the broker refuses."""
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()
        self.wait(lambda: self._connack is not None, "CONNACK")
        return not self._connack.is_failure

    def connect(self) -> Client:
        assert self.try_connect(), f"{self.user} was refused: {self._connack}"
        return self

    def subscribe(self, *topics: str) -> None:
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        self.wait(lambda: mid in self._subacks, f"SUBACK for {topics}")

    def send(
        self, topic: str, payload: bytes | str, *, response_topic: str | None = None
    ) -> paho.MQTTMessageInfo:
        props = None
        if response_topic is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = response_topic
        return self.client.publish(topic, payload, qos=1, properties=props)

    def wait(self, ready: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        timeout = patient(timeout)
        with self._cond:
            if not self._cond.wait_for(ready, timeout=timeout):
                raise AssertionError(f"{self.user}: timed out after {timeout:g} s: {what}")

    def wait_count(self, topic: str, count: int, timeout: float = 120) -> None:
        """Until `count` messages in all have come on `topic`."""
        self.wait(lambda: self.counts.get(topic, 0) >= count, f"{count} on {topic}", timeout)

    def on(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p in self.messages if t == topic]

    def count(self, accept: Callable[[str], bool]) -> int:
        with self._cond:
            return sum(1 for t, _p in self.messages if accept(t))

    def last_json(self, topic: str) -> Any:
        self.wait(lambda: bool(self.on(topic)), f"a message on {topic}")
        return json.loads(self.on(topic)[-1])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def agent_config(
    directory: Path, broker: Broker, emulator: SpotifyEmulator, *, protocol: int = 5
) -> Path:
    """The agent's config on the shipped broker, as the `mqtt-tokend` account."""
    mqtt = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": "mqtt-tokend",
        "password": broker.passwords["mqtt-tokend"],
        "base_topic": BASE,
        "keepalive": 5,
        "protocol": protocol,
    }
    return write_agent_config(
        directory,
        emulator_url=emulator.url,
        mqtt=mqtt,
        agent={"check_interval": 3600, "min_refresh_interval": MIN_REFRESH_INTERVAL},
    )


def health_of(observer: Client) -> dict[str, Any]:
    record: dict[str, Any] = observer.last_json(f"{BASE}/health")
    return record


def wait_for_state(observer: Client, state: str) -> dict[str, Any]:
    observer.wait(
        lambda: (
            bool(observer.on(f"{BASE}/health"))
            and json.loads(observer.on(f"{BASE}/health")[-1]).get("state") == state
        ),
        f"health {state}",
        timeout=20,
    )
    return health_of(observer)


def settled(asker: Client, observer: Client, *, timeout: float = 120) -> None:
    """Wait until the agent has handled everything sent before: a status request with a fresh
    transaction is answered after them (re-sent while the broker might have dropped it)."""
    transaction = uuid.uuid4().hex
    body = json.dumps({"transaction": transaction})

    def answered() -> bool:
        return any(transaction.encode() in p for p in observer.on(f"{BASE}/response/status"))

    deadline = time.monotonic() + timeout
    while not answered():
        assert time.monotonic() < deadline, "the agent did not answer a status request"
        asker.send(f"{BASE}/request/status", body)
        with observer._cond:
            observer._cond.wait_for(answered, timeout=2)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB: now and its peak."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def start_agent(config: Path) -> AgentProcess:
    return AgentProcess(config).start()


MIN_REFRESH_INTERVAL = 30  # the agents' config here: at most one refresh this often


def have_mosquitto() -> bool:
    return shutil.which("mosquitto_passwd") is not None and shutil.which("mosquitto") is not None


MARKS = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not have_mosquitto() or not Path(MOSQUITTO).exists(), reason="Mosquitto is not installed"
    ),
]
