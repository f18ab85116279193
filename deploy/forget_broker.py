"""Removes what an agent left on the broker: every retained message under its base topic (token,
token/app, health, availability, devices, login) and its Home Assistant device (the discovery
configs). Run by `setup_auto_tokens.sh --uninstall` and `--purge` once the agent is stopped, as
the agent's broker user, with the system python3: the standard library and this checkout only,
so it works after the virtual environment is gone (an `--uninstall` first, a `--purge` later).

    python3 deploy/forget_broker.py /etc/mqtt-tokend/config.toml

Prints one line with what it removed; on failure one sentence with the reason, exit 1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import ssl
import struct
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mqtt_tokend.config import Config, MqttConfig, parse_config
from mqtt_tokend.contract.homeassistant import removal_messages
from mqtt_tokend.errors import TokendError

WAIT = 10.0
CONNACK_REASONS = {
    1: "it does not speak MQTT 3.1.1",
    2: "it refused the client id",
    3: "the broker is unavailable",
    4: "it refused the user name or password",
    5: "the user is not authorized",
}


class Unreachable(Exception):
    """The broker could not be reached or refused the agent's login (the message says which)."""


def _length(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (128 if value else 0))
        if not value:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _length(len(body)) + body


class Session:
    """A minimal MQTT 3.1.1 client: connect, subscribe, publish at QoS 1, each answer awaited."""

    def __init__(self, mqtt: MqttConfig) -> None:
        self.where = f"{mqtt.host}:{mqtt.port}"
        try:
            raw = socket.create_connection((mqtt.host, mqtt.port), timeout=WAIT)
        except OSError as err:
            raise Unreachable(f"cannot reach the broker at {self.where}: {err.strerror}") from None
        if mqtt.tls:
            context = ssl.create_default_context(cafile=str(mqtt.ca_file) if mqtt.ca_file else None)
            if mqtt.cert_file:
                context.load_cert_chain(str(mqtt.cert_file), mqtt.key_file and str(mqtt.key_file))
            raw = context.wrap_socket(raw, server_hostname=mqtt.host)
        self.sock = raw
        self.next_id = 0
        flags = 0x02 | (0x80 if mqtt.username else 0) | (0x40 if mqtt.password else 0)
        body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
        body += _text(f"mqtt-tokend-forget-{secrets.token_hex(6)}")
        body += (_text(mqtt.username) if mqtt.username else b"") + (
            _text(mqtt.password) if mqtt.password else b""
        )
        self.sock.sendall(_packet(0x10, body))
        kind, answer = self.read()
        if kind != 0x20 or len(answer) < 2:
            raise Unreachable(f"the broker at {self.where} did not answer the login")
        if answer[1]:
            reason = CONNACK_REASONS.get(answer[1], f"code {answer[1]}")
            who = mqtt.username or "anonymous"
            raise Unreachable(f"the broker at {self.where} refused {who}: {reason}")

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except OSError as err:
                raise Unreachable(f"the broker at {self.where} went away: {err}") from None
            if not chunk:
                raise Unreachable(f"the broker at {self.where} closed the connection")
            data += chunk
        return data

    def read(self) -> tuple[int, bytes]:
        """The next packet: (type and flags, body)."""
        kind = self._exactly(1)[0]
        length, shift = 0, 0
        while True:
            digit = self._exactly(1)[0]
            length += (digit & 127) << shift
            shift += 7
            if not digit & 128:
                break
        return kind, self._exactly(length)

    def _id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    def retained(self, pattern: str) -> tuple[set[str], bool]:
        """The topics under `pattern` that hold a retained message, and whether the broker let
        this user subscribe. A PINGREQ after the SUBACK is the barrier behind them."""
        mid = self._id()
        self.sock.sendall(_packet(0x82, struct.pack("!H", mid) + _text(pattern) + b"\x00"))
        found: set[str] = set()
        granted = True
        pinged = False
        while True:
            kind, body = self.read()
            if kind & 0xF0 == 0x90:
                granted = body[2:3] != b"\x80"
                self.sock.sendall(b"\xc0\x00")
                pinged = True
            elif kind & 0xF0 == 0x30:
                size = struct.unpack("!H", body[:2])[0]
                topic = body[2 : 2 + size].decode("utf-8", "replace")
                offset = 2 + size + (2 if kind & 0x06 else 0)
                if kind & 0x01 and body[offset:]:
                    found.add(topic)
            elif kind == 0xD0 and pinged:
                break
        self.sock.sendall(_packet(0xA2, struct.pack("!H", self._id()) + _text(pattern)))
        return found, granted

    def clear(self, topic: str) -> None:
        """An empty retained message at QoS 1: the broker drops the retained one."""
        mid = self._id()
        self.sock.sendall(_packet(0x33, _text(topic) + struct.pack("!H", mid)))
        while True:
            kind, body = self.read()
            if kind & 0xF0 == 0x40 and struct.unpack("!H", body[:2])[0] == mid:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def forget(mqtt: MqttConfig, discovery_prefix: str) -> str:
    """Clear the agent's retained messages and its discovery configs; say what was removed."""
    base = mqtt.base_topic
    discovery = [
        t for t, _p in removal_messages(base_topic=base, discovery_prefix=discovery_prefix)
    ]
    session = Session(mqtt)
    try:
        found, granted = session.retained(f"{base}/#")
        if not granted:
            raise Unreachable(
                f"the broker does not let {mqtt.username or 'anonymous'} read {base}/#"
            )
        for topic in sorted(found) + discovery:
            session.clear(topic)
        left, _ = session.retained(f"{base}/#")
    finally:
        session.close()
    if left:
        raise Unreachable(f"retained messages stayed on {', '.join(sorted(left))}")
    return (
        f"removed {len(found)} retained messages under {base}/ and the Home Assistant device "
        f"({len(discovery)} discovery topics under {discovery_prefix}/) from the broker at "
        f"{session.where}"
    )


def broker_settings(path: Path) -> Config:
    """The [mqtt] and [homeassistant] sections of the config: a purge must not fail on a
    Spotify client id nobody ever set, or on a broken [alerts] section."""
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise Unreachable(f"cannot read {path}: {err}") from None
    wanted = {name: data[name] for name in ("mqtt", "homeassistant") if name in data}
    wanted["spotify"] = {"client_id": "not-needed-here"}
    return parse_config(wanted, base_dir=path.parent, environ=os.environ, path=path)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        config = broker_settings(Path(argv[1]))
        print(forget(config.mqtt, config.homeassistant.discovery_prefix))
    except (TokendError, Unreachable, ssl.SSLError, OSError) as err:
        print(f"could not clear the broker: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
