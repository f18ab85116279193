"""The shipped Mosquitto config, ACL and password script, proved on a real broker: who may
connect, read and write what (deploy/mosquitto/). The bridge and TLS examples:
test_mosquitto_bridge_tls.py."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    DEPLOY,
    MOSQUITTO,
    STRANGER,
    WAIT,
    Broker,
    Peer,
)

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

BASE = "lofi/spotify"
TOKEN = b"gAAAAABfake-fernet-ciphertext-of-the-user-token"
APP_TOKEN = b"gAAAAABfake-fernet-ciphertext-of-the-app-token"
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code Mosquitto 2 returns for a denied publish

Connect = Callable[..., Peer]


def connected(peers: Connect, username: str, **kwargs: object) -> Peer:
    peer = peers(username, **kwargs)
    code = peer.connect()
    assert not code.is_failure, f"{username} could not connect: {code}"  # type: ignore[attr-defined]
    return peer


def test_anonymous_client_is_refused(peers: Connect) -> None:
    code = peers(None).connect()
    assert code.is_failure  # type: ignore[attr-defined]


@pytest.mark.parametrize("username", ["mqtt-tokend", "lofi-player", "homeassistant"])
def test_wrong_password_is_refused(peers: Connect, username: str) -> None:
    code = peers(username, "not-the-password").connect()
    assert code.is_failure  # type: ignore[attr-defined]


def test_mqtt311_client_with_wrong_password_is_refused(peers: Connect) -> None:
    code = peers("homeassistant", "not-the-password", protocol=3).connect()
    assert code.is_failure  # type: ignore[attr-defined]


@pytest.mark.parametrize("username", ["mqtt-tokend", "lofi-player", "homeassistant", STRANGER])
def test_each_password_from_make_passwords_is_accepted(peers: Connect, username: str) -> None:
    connected(peers, username)


# What the agent publishes, and whether each consumer receives it.
READS = {
    f"{BASE}/token": {"lofi-player": True, "homeassistant": False},
    f"{BASE}/token/app": {"lofi-player": True, "homeassistant": False},
    f"{BASE}/availability": {"lofi-player": True, "homeassistant": True},
    f"{BASE}/health": {"lofi-player": True, "homeassistant": True},
    f"{BASE}/devices": {"lofi-player": False, "homeassistant": True},
    f"{BASE}/alert": {"lofi-player": False, "homeassistant": True},
    f"{BASE}/login": {"lofi-player": False, "homeassistant": True},
    f"{BASE}/response/refresh": {"lofi-player": True, "homeassistant": True},
    f"{BASE}/response/auth": {"lofi-player": False, "homeassistant": True},
    f"{BASE}/response/auth/mine": {"lofi-player": False, "homeassistant": True},
    f"{BASE}/response/check": {"lofi-player": True, "homeassistant": True},
    "homeassistant/sensor/lofi_spotify/state/config": {"lofi-player": False, "homeassistant": True},
}
READ_CASES = [
    pytest.param(
        reader, topic, allowed, id=f"{reader}-{'reads' if allowed else 'never-gets'}-{topic}"
    )
    for topic, readers in READS.items()
    for reader, allowed in readers.items()
]


@pytest.mark.parametrize(("reader", "topic", "allowed"), READ_CASES)
def test_who_reads_what_the_agent_publishes(
    peers: Connect, reader: str, topic: str, allowed: bool
) -> None:
    """The reader subscribes to the exact topic; the agent publishes there, then a sentinel on
    a topic every consumer may read. The sentinel arriving proves the message had its chance:
    the broker routed it first, and one connection's messages stay in order."""
    sentinel = f"{BASE}/health" if topic == f"{BASE}/availability" else f"{BASE}/availability"
    agent = connected(peers, "mqtt-tokend")
    consumer = connected(peers, reader)
    consumer.subscribe(topic, sentinel)
    payload = f"published to {topic}".encode()
    assert agent.publish(topic, payload) == 0
    agent.publish(sentinel, b"sentinel")
    consumer.wait_for(sentinel, b"sentinel")
    assert consumer.payloads(topic) == ([payload] if allowed else [])


# What consumers publish, and whether the agent receives it.
WRITES = {
    f"{BASE}/request/refresh": {"lofi-player": True, "homeassistant": True, STRANGER: False},
    f"{BASE}/request/check": {"lofi-player": False, "homeassistant": True, STRANGER: False},
    f"{BASE}/request/status": {"lofi-player": False, "homeassistant": True, STRANGER: False},
    f"{BASE}/request/auth": {"lofi-player": False, "homeassistant": True, STRANGER: False},
    f"{BASE}/token": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    f"{BASE}/token/app": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    f"{BASE}/health": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    f"{BASE}/availability": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    f"{BASE}/response/refresh": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    f"{BASE}/login": {"lofi-player": False, "homeassistant": False, STRANGER: False},
    "homeassistant/status": {"lofi-player": False, "homeassistant": True, STRANGER: False},
}
WRITE_CASES = [
    pytest.param(
        writer, topic, allowed, id=f"{writer}-{'may' if allowed else 'may-not'}-write-{topic}"
    )
    for topic, writers in WRITES.items()
    for writer, allowed in writers.items()
]


@pytest.mark.parametrize(("writer", "topic", "allowed"), WRITE_CASES)
def test_who_writes_what_the_agent_reads(
    peers: Connect, writer: str, topic: str, allowed: bool
) -> None:
    """The agent listens on its whole tree and homeassistant/status. After the writer's publish
    is acknowledged, the agent publishes a sentinel to itself; when it arrives, a message the
    broker let through would have arrived before it (one connection's messages stay in order)."""
    agent = connected(peers, "mqtt-tokend")
    agent.subscribe(f"{BASE}/#", "homeassistant/status")
    sender = connected(peers, writer)
    payload = f"{writer} wrote {topic}".encode()
    code = sender.publish(topic, payload)
    assert (code == 0) if allowed else (code == NOT_AUTHORIZED)
    agent.publish(f"{BASE}/alert", b"sentinel")
    agent.wait_for(f"{BASE}/alert", b"sentinel")
    assert agent.payloads(topic) == ([payload] if allowed else [])


def test_home_assistant_never_receives_the_retained_token_on_a_wildcard(peers: Connect) -> None:
    """The agent's retained tokens are on the broker before Home Assistant subscribes to the
    whole tree; health and availability come through, the tokens never do, live or retained."""
    agent = connected(peers, "mqtt-tokend")
    agent.publish(f"{BASE}/token", TOKEN, retain=True)
    agent.publish(f"{BASE}/token/app", APP_TOKEN, retain=True)
    agent.publish(f"{BASE}/health", b'{"state": "ok"}', retain=True)
    ha = connected(peers, "homeassistant")
    ha.subscribe(f"{BASE}/#", "#")
    ha.wait_for(f"{BASE}/health", b'{"state": "ok"}')
    agent.publish(f"{BASE}/token", TOKEN + b"-next", retain=True)
    agent.publish(f"{BASE}/availability", b"online", retain=True)
    ha.wait_for(f"{BASE}/availability", b"online")
    assert ha.topics() == {f"{BASE}/health", f"{BASE}/availability"}


def test_player_receives_the_retained_tokens_the_instant_it_subscribes(peers: Connect) -> None:
    agent = connected(peers, "mqtt-tokend")
    agent.publish(f"{BASE}/token", TOKEN, retain=True)
    agent.publish(f"{BASE}/token/app", APP_TOKEN, retain=True)
    player = connected(peers, "lofi-player")
    player.subscribe(f"{BASE}/token", f"{BASE}/token/app")
    player.wait_for(f"{BASE}/token", TOKEN)
    player.wait_for(f"{BASE}/token/app", APP_TOKEN)
    assert all(retain for _t, _p, retain in player.messages)


@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5-reason-code", "mqtt311-silently-dropped"])
def test_spoofed_token_from_the_player_never_replaces_the_real_one(
    peers: Connect, protocol: int
) -> None:
    """The player publishes a retained fake token: MQTT 5 gets 'not authorized', MQTT 3.1.1 is
    dropped silently. Either way no subscriber sees it and the retained token stays the agent's.
    (The agent watches: the broker lets one connection per account, see the client id tests.)"""
    agent = connected(peers, "mqtt-tokend")
    agent.publish(f"{BASE}/token", TOKEN, retain=True)
    agent.subscribe(f"{BASE}/token", f"{BASE}/health")
    agent.wait_for(f"{BASE}/token", TOKEN)

    spoofer = connected(peers, "lofi-player", protocol=protocol)
    code = spoofer.publish(f"{BASE}/token", b"gAAAAAB-spoofed", retain=True)
    if protocol == 5:
        assert code == NOT_AUTHORIZED
    agent.publish(f"{BASE}/health", b"sentinel")
    agent.wait_for(f"{BASE}/health", b"sentinel")
    assert agent.payloads(f"{BASE}/token") == [TOKEN]
    spoofer.close()

    late = connected(peers, "lofi-player")
    late.subscribe(f"{BASE}/token")
    late.wait_for(f"{BASE}/token", TOKEN)
    assert late.payloads(f"{BASE}/token") == [TOKEN]


def test_home_assistant_requests_reach_the_agent_and_answers_come_back(peers: Connect) -> None:
    agent = connected(peers, "mqtt-tokend")
    agent.subscribe(f"{BASE}/request/#", "homeassistant/status")
    ha = connected(peers, "homeassistant")
    ha.subscribe(f"{BASE}/response/#")
    for verb, payload in [
        ("refresh", b'{"transaction": "t1", "reason": "dashboard"}'),
        ("check", b""),
        ("status", b""),
        ("auth", b"http://127.0.0.1:8888/callback?code=abc&state=xyz"),
    ]:
        assert ha.publish(f"{BASE}/request/{verb}", payload) == 0
        agent.wait_for(f"{BASE}/request/{verb}", payload)
    assert ha.publish("homeassistant/status", b"online") == 0
    agent.wait_for("homeassistant/status", b"online")
    agent.publish(f"{BASE}/response/refresh", b'{"status": "ok", "transaction": "t1"}')
    ha.wait_for(f"{BASE}/response/refresh", b'{"status": "ok", "transaction": "t1"}')


def test_agent_reads_no_discovery_but_home_assistants_status(peers: Connect) -> None:
    """The agent writes discovery configs; other devices' configs are none of its business."""
    ha = connected(peers, "homeassistant")
    agent = connected(peers, "mqtt-tokend")
    agent.subscribe("homeassistant/#")
    other = "homeassistant/light/kitchen/config"
    assert ha.publish(other, b"{}") == NOT_AUTHORIZED  # HA only writes its birth message
    agent.publish("homeassistant/sensor/lofi_spotify/state/config", b"{}", retain=True)
    ha.publish("homeassistant/status", b"online")
    agent.wait_for("homeassistant/status", b"online")
    assert agent.topics() == {"homeassistant/status"}


def test_unknown_user_gets_nothing(peers: Connect) -> None:
    """A user with a valid password but no ACL section: no retained message, no live one, and
    every publish refused. The barrier is the stranger's own acknowledged publish: anything
    routed to it before would be ahead of that PUBACK on the same connection."""
    agent = connected(peers, "mqtt-tokend")
    agent.publish(f"{BASE}/token", TOKEN, retain=True)
    agent.publish(f"{BASE}/health", b'{"state": "ok"}', retain=True)
    agent.subscribe(f"{BASE}/#")
    stranger = connected(peers, STRANGER)
    assert all(not code.is_failure for code in stranger.subscribe("#", f"{BASE}/#"))  # type: ignore[attr-defined]
    agent.publish(f"{BASE}/availability", b"online", retain=True)
    assert stranger.publish(f"{BASE}/request/refresh", b"") == NOT_AUTHORIZED
    assert stranger.publish(f"{BASE}/token", b"spoof", retain=True) == NOT_AUTHORIZED
    agent.publish(f"{BASE}/alert", b"sentinel")
    agent.wait_for(f"{BASE}/alert", b"sentinel")
    assert stranger.messages == []
    assert agent.payloads(f"{BASE}/request/refresh") == []
    assert agent.payloads(f"{BASE}/token") == [TOKEN]


def test_make_passwords_is_idempotent(broker: Broker) -> None:
    """A second run with no passwords given keeps every user and rewrites nothing."""
    auth = broker.directory / "auth"
    before = {name: (auth / name).read_bytes() for name in ("passwd", "credentials")}
    result = subprocess.run(
        ["sh", str(DEPLOY / "mosquitto" / "make_passwords.sh"), "--file", str(auth / "passwd")],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        timeout=WAIT,
    )
    assert "kept" in result.stdout
    assert {name: (auth / name).read_bytes() for name in before} == before
    assert (auth / "credentials").stat().st_mode & 0o777 == 0o600
    assert (auth / "passwd").stat().st_mode & 0o777 == 0o600


def test_make_passwords_with_the_same_password_changes_nothing(tmp_path: Path) -> None:
    script = str(DEPLOY / "mosquitto" / "make_passwords.sh")
    passwd = tmp_path / "passwd"
    args = ["sh", script, "--file", str(passwd), "--agent", "a", "--player", "p"]
    args += ["--homeassistant", "h"]
    subprocess.run(args, check=True, capture_output=True, timeout=WAIT)
    first = passwd.read_bytes()
    again = subprocess.run(args, check=True, capture_output=True, text=True, timeout=WAIT)
    assert again.stdout.count("unchanged") == 3
    assert passwd.read_bytes() == first
    assert not (tmp_path / "credentials").exists(), "nothing was generated"
    changed = subprocess.run(
        [*args[:-1], "h2"], check=True, capture_output=True, text=True, timeout=WAIT
    )
    assert "homeassistant: password updated" in changed.stdout
    assert passwd.read_bytes() != first


def test_player_never_receives_the_retained_pending_login(peers: Connect) -> None:
    """The login URL carries the pending login's state: retained on <base>/login, the player
    subscribing to the whole tree gets everything it may read, never that."""
    agent = connected(peers, "mqtt-tokend")
    login = b'{"url": "https://accounts.spotify.com/authorize?state=s3cret"}'
    agent.publish(f"{BASE}/login", login, retain=True)
    agent.publish(f"{BASE}/health", b'{"state": "auth_required"}', retain=True)
    player = connected(peers, "lofi-player")
    assert all(not code.is_failure for code in player.subscribe(f"{BASE}/#"))  # type: ignore[attr-defined]
    player.wait_for(f"{BASE}/health", b'{"state": "auth_required"}')
    ha = connected(peers, "homeassistant")
    ha.subscribe(f"{BASE}/login")
    ha.wait_for(f"{BASE}/login", login)
    agent.publish(f"{BASE}/availability", b"sentinel")
    player.wait_for(f"{BASE}/availability", b"sentinel")
    assert f"{BASE}/login" not in player.topics()


@pytest.mark.parametrize("username", ["mqtt-tokend", "lofi-player", "homeassistant"])
def test_sessions_of_one_account_never_disconnect_each_other(peers: Connect, username: str) -> None:
    """No use_username_as_clientid: three connections of one account, each with a client id of
    its own, all stay connected (the agent beside `mqtt-tokend status`, a player beside its
    `get-token`). On main the broker named each session after its account, so every new
    connection ended the one before. A stranger guessing the agent's id: test_sessions.py."""
    sessions = [connected(peers, username) for _ in range(3)]
    gone: list[object] = []
    for session in sessions:
        session.client.on_disconnect = lambda *args: gone.append(args)
    for session in sessions:
        session.subscribe(f"{BASE}/health")  # a SUBACK: the broker still serves this session
    assert gone == []
    assert all(session.client.is_connected() for session in sessions)


@pytest.mark.parametrize("size", [20 * 1024, 256 * 1024 + 1])
def test_an_oversized_message_is_refused_by_the_broker(peers: Connect, size: int) -> None:
    """max_packet_size 16384: the broker drops the sender instead of holding (and delivering)
    a message of 256 KiB or more; the agent never receives it."""
    agent = connected(peers, "mqtt-tokend")
    agent.subscribe(f"{BASE}/request/#")
    ha = connected(peers, "homeassistant")
    dropped: list[object] = []
    ha.client.on_disconnect = lambda *args: dropped.append(args)
    ha.client.publish(f"{BASE}/request/auth", b"x" * size, qos=1)
    deadline = time.monotonic() + WAIT
    while not dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dropped, "the broker accepted an oversized packet"
    writer = connected(peers, "homeassistant")
    assert writer.publish(f"{BASE}/request/auth", b"small") == 0
    agent.wait_for(f"{BASE}/request/auth", b"small")
    assert agent.payloads(f"{BASE}/request/auth") == [b"small"]
