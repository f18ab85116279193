"""The installer on a machine whose Mosquitto already serves other clients: a stock Debian
Mosquitto, a Home Assistant style one with its own users and ACL, and one with anonymous clients
on 1883. Each is a staged tree (--root) whose Mosquitto really runs (staged_broker.py, with
1883 moved to a free port); the installer restarts it through --broker-restart, as systemctl
would. Afterwards every client that connected before still does what it did, and the agent's
accounts work."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest

from mqtt_tokend.daemon.wiring import CLIENT_ID_FILE
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.deploy import debian_broker
from tests.deploy.conftest import MOSQUITTO, WAIT, free_port, run_installer
from tests.deploy.debian_broker import (
    ANONYMOUS_LOCAL,
    BASE,
    DEBIAN_MAIN,
    HA_ACL,
    HA_LOCAL,
    HA_USERS,
    NOT_AUTHORIZED,
    Staged,
    accepted,
    add_users,
    agent_works,
    exchange,
)
from tests.integration.conftest import AgentProcess, login, write_agent_config
from tests.integration.watch import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)
staged = debian_broker.staged  # the fixture: a staged machine whose broker runs


def test_stock_debian_mosquitto_keeps_its_anonymous_clients_but_not_our_topics(
    staged: Staged,
) -> None:
    """Debian's main mosquitto.conf, nothing in conf.d (local-only mode: anonymous clients on
    loopback). After a default install anonymous clients still connect and use their own
    topics, but never read the token nor write a request; the agent's accounts work; the
    installer says what it did and names --lock-down-broker. (On main they were refused.)"""
    staged.start()
    before = staged.connected(None)
    before.close()
    result = staged.install()
    assert "broker check passed: a throwaway Mosquitto ran the local configuration" in result.stdout
    assert "mosquitto: restart done" in result.stdout
    assert "Anonymous clients on 127.0.0.1:1883 still connect" in result.stdout
    assert "setup_auto_tokens.sh --lock-down-broker" in result.stdout
    etc = staged.root / "etc/mosquitto"
    assert (etc / "mosquitto.conf").read_text() == DEBIAN_MAIN
    conf = (etc / "conf.d/mqtt-tokend.conf").read_text()
    assert "allow_anonymous true" in conf and "use_username_as_clientid" not in conf
    agent_works(staged)

    sensor = staged.connected(None)
    display = staged.connected(None)
    display.subscribe("sensors/#", f"{BASE}/#")
    exchange(sensor, display, "sensors/temperature", b"21.5")
    assert sensor.publish(f"{BASE}/request/refresh", b"{}") == NOT_AUTHORIZED
    assert sensor.publish(f"{BASE}/request/auth", b"x") == NOT_AUTHORIZED
    exchange(sensor, display, "sensors/sentinel", b"after")
    assert display.payloads(f"{BASE}/token") == [], "anonymous never reads the token"
    assert not any(t.startswith(BASE) for t in display.topics())

    again = staged.install()
    assert "updated" not in again.stdout and "installed /etc/mosquitto" not in again.stdout


def test_lock_down_broker_installs_the_shipped_configuration(staged: Staged) -> None:
    """--lock-down-broker on a stock Mosquitto: the shipped files go in whole (Debian's own
    lines stay), anonymous clients are refused, and a later plain run keeps it locked."""
    staged.start()
    result = staged.install("--lock-down-broker")
    assert "ran the locked-down configuration" in result.stdout
    assert "Anonymous clients are refused" in result.stdout
    etc = staged.root / "etc/mosquitto"
    assert (etc / "mosquitto.conf").read_text() == DEBIAN_MAIN
    shipped = staged.snapshot / "deploy/mosquitto"
    assert (etc / "conf.d/mqtt-tokend.conf").read_bytes() == (
        shipped / "mosquitto.conf"
    ).read_bytes()
    assert (etc / "mqtt-tokend/acl").read_bytes() == (shipped / "acl").read_bytes()
    agent_works(staged)
    assert staged.client(None).connect().is_failure  # type: ignore[attr-defined]

    again = staged.install()
    assert "ran the locked-down configuration" in again.stdout
    assert "updated" not in again.stdout and "installed /etc/mosquitto" not in again.stdout
    assert staged.client(None).connect().is_failure  # type: ignore[attr-defined]


def test_lock_down_broker_leaves_a_configured_broker_alone(staged: Staged) -> None:
    """The option replaces a stock configuration only: on a broker with its own listener and
    users the installer stops with the reason and writes nothing."""
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(HA_LOCAL)
    (etc / "acl").write_text(HA_ACL)
    add_users(staged, HA_USERS)
    before = staged.broker_files()
    result = staged.install("--lock-down-broker", check=False)
    assert result.returncode != 0
    assert "--lock-down-broker replaces Mosquitto's stock configuration only" in result.stdout
    assert staged.broker_files() == before


def test_home_assistant_broker_keeps_its_users_acl_and_listener(staged: Staged) -> None:
    """A Home Assistant Pi: its own listener on 1883, password file and ACL in conf.d/local.conf.
    The installer adds our users to that password file and a marked block to that ACL: no
    second listener, no second password_file. Home Assistant keeps its password and its `#`,
    zigbee2mqtt keeps its topics (and its big messages), and loses only the agent's tree."""
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(HA_LOCAL)
    (etc / "acl").write_text(HA_ACL)
    add_users(staged, HA_USERS)
    staged.start()
    z2m = staged.connected("zigbee2mqtt", HA_USERS["zigbee2mqtt"])
    ha = staged.connected("homeassistant", HA_USERS["homeassistant"])
    ha.subscribe("zigbee2mqtt/#")
    exchange(z2m, ha, "zigbee2mqtt/bridge/state", b"online")

    result = staged.install("--ha-user", "homeassistant")
    assert "broker check passed" in result.stdout
    assert "  homeassistant (Home Assistant): may no longer read token, token/app" in result.stdout
    assert "  zigbee2mqtt: may no longer read" in result.stdout
    conf = (etc / "conf.d/mqtt-tokend.conf").read_text()
    assert "listener" not in conf and "password_file" not in conf and "acl_file" not in conf
    assert (etc / "conf.d/local.conf").read_text() == HA_LOCAL
    acl = (etc / "acl").read_text()
    assert HA_ACL in acl and "user mqtt-tokend" in acl
    assert not (etc / "mqtt-tokend/passwd").exists()
    assert "homeassistant" not in staged.credentials(), "Home Assistant keeps its own password"

    for peer in (z2m, ha):  # the restart dropped them: they reconnect as they always do
        peer.close()
    z2m = staged.connected("zigbee2mqtt", HA_USERS["zigbee2mqtt"])
    ha = staged.connected("homeassistant", HA_USERS["homeassistant"])
    ha.subscribe("zigbee2mqtt/#", "homeassistant/#")
    exchange(z2m, ha, "zigbee2mqtt/bridge/devices", b"[" + b"0" * 100_000 + b"]")
    exchange(z2m, ha, "homeassistant/light/kitchen/config", b"{}")
    agent_works(staged, home_assistant=("homeassistant", HA_USERS["homeassistant"]))
    assert z2m.publish(f"{BASE}/request/auth", b"x") == NOT_AUTHORIZED
    spy = staged.connected("zigbee2mqtt", HA_USERS["zigbee2mqtt"])
    spy.subscribe(f"{BASE}/#", "zigbee2mqtt/#")
    exchange(ha, spy, "zigbee2mqtt/sentinel", b"after")
    assert spy.payloads(f"{BASE}/token") == [], "zigbee2mqtt never gets the agent's token"

    again = staged.install()  # the account an earlier run was given is remembered
    assert "updated" not in again.stdout and "installed /etc/mosquitto" not in again.stdout
    assert (etc / "acl").read_text() == acl, "a second run adds no second block"


@pytest.mark.parametrize("where", ["conf.d", "main-without-include-dir"])
def test_anonymous_clients_on_1883_stay_anonymous(staged: Staged, where: str) -> None:
    """A broker that lets anonymous clients in on 1883 still does, for every topic but the
    agent's; the agent's accounts get a password file and ACL of their own. A main
    mosquitto.conf without include_dir gets that one line, nothing else."""
    etc = staged.root / "etc/mosquitto"
    if where == "conf.d":
        (etc / "conf.d/local.conf").write_text(ANONYMOUS_LOCAL)
    else:
        (etc / "mosquitto.conf").write_text(ANONYMOUS_LOCAL)
    staged.start()
    sensor = staged.connected(None)
    display = staged.connected(None)
    display.subscribe("sensors/#")
    exchange(sensor, display, "sensors/temperature", b"21.5")

    result = staged.install()
    assert "broker check passed" in result.stdout
    conf = (etc / "conf.d/mqtt-tokend.conf").read_text()
    assert "listener" not in conf and "allow_anonymous" not in conf
    assert "password_file /etc/mosquitto/mqtt-tokend/passwd" in conf
    if where != "conf.d":
        main = (etc / "mosquitto.conf").read_text()
        assert main.startswith(ANONYMOUS_LOCAL) and main.endswith(
            "include_dir /etc/mosquitto/conf.d\n"
        )
    for peer in (sensor, display):
        peer.close()
    sensor = staged.connected(None)
    display = staged.connected(None)
    display.subscribe("sensors/#", f"{BASE}/#")
    exchange(sensor, display, "sensors/temperature", b"22.0")
    agent_works(staged)
    assert sensor.publish(f"{BASE}/request/refresh", b"{}") == NOT_AUTHORIZED
    exchange(sensor, display, "sensors/sentinel", b"after")
    assert not any(t.startswith(BASE) for t in display.topics()), "anonymous never reads ours"


def test_a_broker_that_does_not_restart_gets_its_old_files_back(staged: Staged) -> None:
    """The restart fails (here: whenever our conf.d file is present): the installer puts the
    previous files back byte for byte, restarts again, and the old clients connect."""
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(HA_LOCAL)
    (etc / "acl").write_text(HA_ACL)
    add_users(staged, HA_USERS)
    staged.start()
    before = staged.broker_files()
    failing = f"test ! -e {etc}/conf.d/mqtt-tokend.conf && {staged.restart}"
    result = run_installer(
        staged.snapshot,
        staged.root,
        "--no-venv",
        "--ha-user",
        "homeassistant",
        "--broker-restart",
        failing,
        check=False,
    )
    assert result.returncode != 0
    assert "putting the previous files back" in result.stdout
    assert "mosquitto: restarted with the previous files" in result.stdout
    # Everything it added goes too: credentials, the record of added users, its directory.
    assert staged.broker_files() == before
    assert not (etc / "mqtt-tokend").exists()
    staged.connected("zigbee2mqtt", HA_USERS["zigbee2mqtt"])
    staged.connected("homeassistant", HA_USERS["homeassistant"])


@pytest.mark.parametrize(
    ("local", "reason"),
    [
        (
            "per_listener_settings true\nlistener 1883\nallow_anonymous true\n",
            "per_listener_settings is true",
        ),
        (
            "listener 1883\npassword_file /etc/mosquitto/a\npassword_file /etc/mosquitto/b\n",
            "password_file is set more than once",
        ),
    ],
    ids=["per-listener-settings", "two-password-files"],
)
def test_a_setup_it_cannot_merge_is_left_alone_with_the_lines_to_add(
    staged: Staged, local: str, reason: str
) -> None:
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(local)
    before = staged.broker_files()
    result = staged.install()
    assert staged.broker_files() == before, "nothing is written"
    assert f"Cannot merge into this Mosquitto setup: {reason}" in result.stdout
    assert "topic readwrite lofi/spotify/#" in result.stdout, "the exact ACL lines"
    assert "make_passwords.sh --file PASSWORD_FILE" in result.stdout


def test_a_merged_config_that_does_not_run_is_never_installed(staged: Staged) -> None:
    """The throwaway broker catches what Mosquitto would refuse at restart (here: the user's
    own duplicate password_file line): nothing is written and nothing is restarted."""
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(HA_LOCAL + "password_file /etc/mosquitto/passwd\n")
    (etc / "acl").write_text(HA_ACL)
    add_users(staged, HA_USERS)
    before = staged.broker_files()
    result = staged.install("--ha-user", "homeassistant", check=False)
    assert result.returncode != 0
    assert "does not work; nothing was changed" in result.stdout
    assert "Duplicate password_file" in result.stdout
    assert staged.broker_files() == before
    assert not (staged.work / "mosquitto.pid").exists(), "no restart was attempted"


def agent_config(directory: Path, port: int, password: str, emulator: SpotifyEmulator) -> Path:
    """The agent's config for the staged broker: the installer's mqtt-tokend user, the default
    client id (no mqtt.client_id), the emulator for Spotify."""
    return write_agent_config(
        directory,
        emulator_url=emulator.url,
        mqtt={"port": port, "username": "mqtt-tokend", "password": password, "keepalive": 5},
        redirect_uri=f"http://127.0.0.1:{free_port()}/callback",
    )


def test_a_stranger_with_the_agents_old_client_id_does_not_take_its_session(
    staged: Staged, tmp_path: Path
) -> None:
    """A merged broker has no use_username_as_clientid (here: the default install on a stock
    Mosquitto, where anonymous clients connect). A stranger connecting with the agent's old,
    predictable client id (`mqtt-tokend-<host>-<hash>`) takes nothing: the agent is never
    disconnected (no Last Will `offline`, no second `online`) and its health stays ok. On main
    every such connection kicked the agent off."""
    staged.start()
    staged.install()
    passwords = staged.credentials()
    assert (
        "use_username_as_clientid"
        not in (staged.root / "etc/mosquitto/conf.d/mqtt-tokend.conf").read_text()
    )
    digest = hashlib.sha256(BASE.encode()).hexdigest()[:8]
    old_id = f"mqtt-tokend-{socket.gethostname()}-{digest}"[:64]
    with SpotifyEmulator() as emulator:
        config = agent_config(tmp_path / "agent", staged.port, passwords["mqtt-tokend"], emulator)
        assert login(config).returncode == 0
        ha = staged.connected("homeassistant", passwords["homeassistant"])
        ha.subscribe(f"{BASE}/availability", f"{BASE}/health", f"{BASE}/response/#")
        agent = AgentProcess(config).start()
        try:
            ha.wait_for(f"{BASE}/availability", b"online")
            stored = (config.parent / "state" / CLIENT_ID_FILE).read_text().strip()
            for _ in range(5):
                for username in (None, "lofi-player"):
                    stranger = staged.client(username, passwords.get(username or ""), old_id)
                    assert not stranger.connect().is_failure  # type: ignore[attr-defined]
                    stranger.close()
            # The agent answers a check after the strangers: a takeover would have shown before.
            assert accepted(ha.publish(f"{BASE}/request/check", b""))
            wait_until(
                lambda: (
                    ha.payloads(f"{BASE}/response/check")
                    or b"offline" in ha.payloads(f"{BASE}/availability")
                ),
                timeout=WAIT,
                what="the agent's answer (or its Last Will)",
            )
            availability = ha.payloads(f"{BASE}/availability")
            # The agent says `online` with each health record; a takeover shows as `offline`.
            assert set(availability) == {b"online"}, f"kicked off: {availability.count(b'offline')}"
            health = ha.payloads(f"{BASE}/health")
            assert health and json.loads(health[-1])["state"] == "ok", health
        finally:
            agent.stop()
    assert len(stored) == 24, "the agent ran with the default, random client id"


def test_without_ha_user_the_installer_asks_for_it_and_leaves_mosquitto_alone(
    staged: Staged,
) -> None:
    """Not on a terminal, a broker with candidate accounts for Home Assistant: the installer
    names them, says how to run it again (--ha-user), and changes no broker file."""
    etc = staged.root / "etc/mosquitto"
    (etc / "conf.d/local.conf").write_text(HA_LOCAL)
    (etc / "acl").write_text(HA_ACL)
    add_users(staged, HA_USERS)
    before = staged.broker_files()
    result = staged.install()
    assert "Candidates: homeassistant, zigbee2mqtt" in result.stdout
    assert "run this again with --ha-user NAME" in result.stdout
    assert staged.broker_files() == before
