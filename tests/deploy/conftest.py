"""Fixtures for the deploy tests: the repository's paths, a Mosquitto started from the shipped
files, and MQTT clients whose every wait is a condition with a deadline."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SHARED = REPO.parent / "shared"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
WAIT = 10.0  # seconds: the deadline for anything a healthy loopback setup does in milliseconds

# The passwords the broker fixture gives the shipped users, each from another source that
# make_passwords.sh accepts: the environment, an option, and a generated one (read back).
AGENT_PASSWORD = "agent-secret-from-env"
PLAYER_PASSWORD = "player-secret-from-argument"
STRANGER = "stranger"  # in the password file, not in the ACL
STRANGER_PASSWORD = "stranger-secret"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def substitute(text: str, old: str, new: str) -> str:
    """Replace `old` exactly once: a shipped file that changed shape must fail loudly."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the shipped file"
    return text.replace(old, new)


def _broker_user() -> str | None:
    """The user Mosquitto drops to when started as root (None when not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("mosquitto", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return None


@dataclass
class Broker:
    """A Mosquitto process on a free loopback port, configured from deploy/mosquitto/."""

    port: int
    directory: Path
    passwords: dict[str, str]
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log(self) -> str:
        """What Mosquitto wrote so far (for failure messages)."""
        return (self.directory / "mosquitto.log").read_text(errors="replace")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_broker(directory: Path, *, extra_conf: str = "") -> Broker:
    """Start Mosquitto with exactly the shipped mosquitto.conf, acl and make_passwords.sh;
    only the port and the file locations differ. `extra_conf` is appended (bridge, TLS)."""
    owner = _broker_user()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # Mosquitto reads its files after dropping root
    auth = directory / "auth"
    data = directory / "data"
    data.mkdir()
    env = {**os.environ, "MQTT_TOKEND_MQTT_PASSWORD": AGENT_PASSWORD}
    env.pop("LOFI_PLAYER_MQTT_PASSWORD", None)
    env.pop("HOMEASSISTANT_MQTT_PASSWORD", None)
    command = [
        "sh",
        str(DEPLOY / "mosquitto" / "make_passwords.sh"),
        "--file",
        str(auth / "passwd"),
    ]
    command += ["--player", PLAYER_PASSWORD]
    if owner:
        command += ["--owner", owner]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=WAIT)
    subprocess.run(
        ["mosquitto_passwd", "-b", str(auth / "passwd"), STRANGER, STRANGER_PASSWORD],
        check=True,
        capture_output=True,
        timeout=WAIT,
    )
    generated = dict(line.split(":", 1) for line in (auth / "credentials").read_text().splitlines())
    assert set(generated) == {"homeassistant"}, "only the password nobody gave is generated"
    shutil.copyfile(DEPLOY / "mosquitto" / "acl", auth / "acl")
    if owner:  # make_passwords.sh --owner took care of the password file
        shutil.chown(auth / "acl", owner)
        shutil.chown(data, owner)

    port = free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = substitute(conf, "listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    conf = substitute(conf, "/etc/mosquitto/mqtt-tokend/passwd", str(auth / "passwd"))
    conf = substitute(conf, "/etc/mosquitto/mqtt-tokend/acl", str(auth / "acl"))
    conf = substitute(conf, "/var/lib/mosquitto/", f"{data}/")
    passwords = {
        "mqtt-tokend": AGENT_PASSWORD,
        "lofi-player": PLAYER_PASSWORD,
        "homeassistant": generated["homeassistant"],
        STRANGER: STRANGER_PASSWORD,
    }
    return _launch(directory, port, conf + extra_conf, passwords)


def start_plain_broker(directory: Path) -> Broker:
    """A stock Mosquitto that lets anyone in: stands for somebody else's central broker."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    port = free_port()
    conf = f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    return _launch(directory, port, conf, {})


def _launch(directory: Path, port: int, conf: str, passwords: dict[str, str]) -> Broker:
    (directory / "mosquitto.conf").write_text(conf)
    with (directory / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(directory / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    broker = Broker(port=port, directory=directory, passwords=passwords, process=process)
    deadline = time.monotonic() + WAIT
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_broker(broker)
            pytest.fail(f"Mosquitto did not start on port {port}:\n{broker.log}")
        time.sleep(0.01)
    return broker


def stop_broker(broker: Broker) -> None:
    """Stop the broker this test started (by its own process handle)."""
    if broker.process.poll() is None:
        broker.process.terminate()
        try:
            broker.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            broker.process.kill()
            broker.process.wait(timeout=WAIT)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the repository: the installer builds what it runs from, and other
    people edit the working tree while these tests run."""
    target = tmp_path_factory.mktemp("repo") / "mqtt-tokend"
    shutil.copytree(
        REPO,
        target,
        ignore=shutil.ignore_patterns(
            ".git", "tests", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv"
        ),
    )
    return target


INSTALLER_TIMEOUT = 300  # the venv run downloads the dependencies once per machine


def run_installer(
    snapshot: Path, root: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """deploy/setup_auto_tokens.sh --root ROOT ARGS, from the snapshot, without any broker
    password in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_MQTT_PASSWORD")}
    result = subprocess.run(
        ["bash", str(snapshot / "deploy" / "setup_auto_tokens.sh"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=INSTALLER_TIMEOUT,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"installer failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def broker(broker_dir: Path) -> Iterator[Broker]:
    """Mosquitto from the shipped config, ACL and password script, on a free port."""
    started = start_broker(broker_dir / "broker")
    yield started
    stop_broker(started)


@pytest.fixture
def peers(broker: Broker) -> Iterator[Callable[..., Peer]]:
    """Connects MQTT clients to `broker` by user name; all are disconnected afterwards."""
    made: list[Peer] = []

    def connect(username: str | None, password: str | None = None, **kwargs: object) -> Peer:
        if username is not None and password is None:
            password = broker.passwords[username]
        peer = Peer(broker.port, username, password, **kwargs)  # type: ignore[arg-type]
        made.append(peer)
        return peer

    yield connect
    for peer in made:
        peer.close()


class Peer:
    """One paho-mqtt client (CallbackAPIVersion.VERSION2) whose calls wait for the broker's
    answer: CONNACK, SUBACK, PUBACK (QoS 1), or a message, each with a deadline."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        *,
        protocol: int = 5,
        tls_ca: Path | None = None,
        client_id: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        self.username = username
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{username or 'anonymous'}-{uuid.uuid4().hex[:8]}",
            protocol=version,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self._cond = threading.Condition(threading.RLock())
        self.connack: object | None = None
        self.messages: list[tuple[str, bytes, bool]] = []
        self._subacks: dict[int, list[object]] = {}
        self._pubacks: dict[int, object] = {}
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.port = port

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if reason.is_failure:  # type: ignore[attr-defined]
            self.client.disconnect()  # from the network thread: stops paho's reconnect loop
        with self._cond:
            self.connack = reason
            self._cond.notify_all()

    def _on_subscribe(
        self, _c: object, _u: object, mid: int, codes: list[object], _p: object
    ) -> None:
        with self._cond:
            self._subacks[mid] = codes
            self._cond.notify_all()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        with self._cond:
            self._pubacks[mid] = reason
            self._cond.notify_all()

    def _on_message(self, _c: object, _u: object, message: object) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload, bool(message.retain)))  # type: ignore[attr-defined]
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=WAIT):
                pytest.fail(f"{self.username}: timed out waiting for {what}")

    def connect(self) -> object:
        """Connect and return the CONNACK reason code (a refused client is not retried)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")
        return self.connack

    def subscribe(self, *topics: str, qos: int = 1) -> list[object]:
        """Subscribe (QoS 1 unless told) and return the SUBACK reason codes."""
        result, mid = self.client.subscribe([(topic, qos) for topic in topics])
        assert result == self._mqtt.MQTT_ERR_SUCCESS
        self._wait(lambda: mid in self._subacks, f"SUBACK for {topics}")
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> object:
        """Publish at QoS 1 and return the PUBACK reason code once the broker has routed it."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._wait(lambda: info.mid in self._pubacks, f"PUBACK for {topic}")
        return self._pubacks[info.mid]

    def arrived(self, topic: str, timeout: float) -> bool:
        """Whether anything arrives on `topic` within `timeout` seconds (no failure)."""
        with self._cond:
            return self._cond.wait_for(lambda: topic in self.topics(), timeout=timeout)

    def wait_for(self, topic: str, payload: bytes) -> None:
        """Wait until (topic, payload) has arrived."""
        self._wait(
            lambda: any(t == topic and p == payload for t, p, _r in self.messages),
            f"{payload!r} on {topic}",
        )

    def payloads(self, topic: str) -> list[bytes]:
        """Everything received on `topic` so far, in order."""
        with self._cond:
            return [p for t, p, _r in self.messages if t == topic]

    def topics(self) -> set[str]:
        """Every topic a message arrived on so far."""
        with self._cond:  # re-entrant: arrived() calls this holding the lock
            return {t for t, _p, _r in self.messages}

    def close(self) -> None:
        """Disconnect, stop the network thread, and drop the callbacks: without the reference
        cycle paho's client is freed at once and closes its sockets itself."""
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_connect = self.client.on_subscribe = None
        self.client.on_publish = self.client.on_message = None
