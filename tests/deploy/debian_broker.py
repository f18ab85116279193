"""A staged machine with Debian's Mosquitto layout whose broker really runs (Staged, and the
`staged` fixture), the layouts households already have (a Home Assistant broker with its own
users and ACL, anonymous clients on 1883), and the checks that clients still work after the
installer merged into it. Used by test_broker_merge.py, test_uninstall.py and
test_printed_commands.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import WAIT, Peer, free_port, run_installer
from tests.deploy.staged_broker import StagedMachine

BASE = "lofi/spotify"
NOT_AUTHORIZED = 0x87
DEBIAN_MAIN = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""
HA_LOCAL = """\
listener 1883
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
"""
HA_ACL = """\
user homeassistant
topic read #
topic readwrite zigbee2mqtt/#
topic write homeassistant/status

user zigbee2mqtt
topic readwrite zigbee2mqtt/#
topic readwrite homeassistant/#
"""
HA_USERS = {"homeassistant": "ha-own-password", "zigbee2mqtt": "z2m-own-password"}
ANONYMOUS_LOCAL = "listener 1883\nallow_anonymous true\n"


class Staged(StagedMachine):
    """A staged machine with Debian's Mosquitto layout and a running broker for it."""

    def __init__(self, root: Path, work: Path) -> None:
        super().__init__(root, work, free_port())
        self.peers: list[Peer] = []
        etc = root / "etc/mosquitto"
        (etc / "conf.d").mkdir(parents=True)
        (etc / "mosquitto.conf").write_text(DEBIAN_MAIN)
        (etc / "conf.d/README").write_text("Any files placed in this directory ending .conf ...\n")
        (root / "var/lib/mosquitto").mkdir(parents=True)
        (root / "var/log/mosquitto").mkdir(parents=True)

    def stop(self) -> None:
        for peer in self.peers:
            peer.close()
        super().stop()

    def client(
        self, username: str | None, password: str | None = None, client_id: str | None = None
    ) -> Peer:
        peer = Peer(self.port, username, password, client_id=client_id)
        self.peers.append(peer)
        return peer

    def connected(self, username: str | None, password: str | None = None) -> Peer:
        peer = self.client(username, password)
        code = peer.connect()
        assert not code.is_failure, f"{username} could not connect: {code}"  # type: ignore[attr-defined]
        return peer

    def install(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_installer(
            self.snapshot,
            self.root,
            "--no-venv",
            "--broker-restart",
            self.restart,
            *args,
            check=check,
        )

    snapshot: Path

    def credentials(self) -> dict[str, str]:
        text = (self.root / "etc/mosquitto/mqtt-tokend/credentials").read_text()
        return dict(line.split(":", 1) for line in text.splitlines())


@pytest.fixture
def staged(snapshot: Path, tmp_path: Path) -> Iterator[Staged]:
    machine = Staged(tmp_path / "root", tmp_path / "broker")
    machine.snapshot = snapshot
    yield machine
    machine.stop()


def add_users(staged: Staged, users: dict[str, str]) -> None:
    passwd = staged.root / "etc/mosquitto/passwd"
    for user, password in users.items():
        subprocess.run(
            [
                "mosquitto_passwd",
                *([] if passwd.exists() else ["-c"]),
                "-b",
                str(passwd),
                user,
                password,
            ],
            check=True,
            capture_output=True,
            timeout=WAIT,
        )


def accepted(code: object) -> bool:
    """A PUBACK the broker routed ('success' or 'no matching subscribers')."""
    return not code.is_failure  # type: ignore[attr-defined]


def exchange(sender: Peer, receiver: Peer, topic: str, payload: bytes) -> None:
    """`sender` publishes on `topic` and `receiver` gets it (it subscribed before)."""
    assert accepted(sender.publish(topic, payload))
    receiver.wait_for(topic, payload)


def agent_works(staged: Staged, home_assistant: tuple[str, str] | None = None) -> None:
    """The agent's accounts after install: it publishes the token, the player reads it and asks
    for a refresh, Home Assistant reads health and sends a command."""
    passwords = staged.credentials()
    agent = staged.connected("mqtt-tokend", passwords["mqtt-tokend"])
    agent.subscribe(f"{BASE}/request/#")
    assert accepted(agent.publish(f"{BASE}/token", b"gAAAA-token", retain=True))
    assert accepted(agent.publish(f"{BASE}/health", b'{"state": "ok"}', retain=True))
    player = staged.connected("lofi-player", passwords["lofi-player"])
    player.subscribe(f"{BASE}/token")
    player.wait_for(f"{BASE}/token", b"gAAAA-token")
    exchange(player, agent, f"{BASE}/request/refresh", b"{}")
    ha_user, ha_password = home_assistant or ("homeassistant", passwords["homeassistant"])
    ha = staged.connected(ha_user, ha_password)
    ha.subscribe(f"{BASE}/health")
    ha.wait_for(f"{BASE}/health", b'{"state": "ok"}')
    exchange(ha, agent, f"{BASE}/request/check", b"")
