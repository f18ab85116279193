"""No session disconnects another (issue 16, item 4), on a Mosquitto started from the shipped
files: the agent, two consumers of one user, the CLI and the health check side by side; a
stranger guessing client ids takes nothing; and a broker that still forces the user name as
client id (an older install) is named, with its fix, by the very command that suffered it."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.daemon.wiring import CLIENT_ID_FILE
from tests.deploy.conftest import (
    MOSQUITTO,
    STRANGER,
    WAIT,
    Peer,
    _launch,
    start_broker,
    stop_broker,
)
from tests.deploy.household import BASE, KICK, household
from tests.integration.watch import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

FORCED = "use_username_as_clientid true\n"
WARNING = "share one session (use_username_as_clientid true)"
ZERO = {
    "commands failed": 0,
    "broker 'already connected' lines": 0,
    "agent disconnects (its log)": 0,
    "consumer disconnects (on_disconnect)": 0,
    "availability 'offline'": 0,
}


def test_the_shipped_broker_does_not_force_the_user_name_as_client_id() -> None:
    conf = (Path(__file__).resolve().parents[2] / "deploy/mosquitto/mosquitto.conf").read_text()
    lines = [line.split("#", 1)[0].strip() for line in conf.splitlines()]
    assert not [line for line in lines if line.startswith("use_username_as_clientid")]


@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5", "mqtt3.1.1"])
def test_cli_commands_and_health_checks_disconnect_no_session(
    broker_dir: Path, protocol: int
) -> None:
    """16 commands (status, check, get-token, refresh) and 4 health checks, two at a time,
    beside the agent and two consumers of the player's user, under MQTT 5 (the broker picks a
    command's id) and 3.1.1 (a random one of ours): nobody is disconnected, every command
    succeeds and sees the agent online. On main (the broker forced the user name as client id)
    38 sessions were taken in the same run."""
    with household(broker_dir, protocol=protocol) as house:
        results = house.stream(commands=16, health_checks=4)
        tally = house.tally()
        assert {k: v for k, v in tally.items() if k in ZERO} == ZERO, (tally, house.failures)
        assert tally["commands run"] == 20
        for result in results:
            assert WARNING not in result.stderr
            command = result.args[-1]
            if command == "status":
                assert "agent           online" in result.stdout, result.stdout
            if command in ("check", "health-check"):
                assert result.stdout.startswith("OK:"), result.stdout
        assert all(consumer.connected for consumer in house.consumers)


def test_a_stranger_guessing_client_ids_does_not_take_the_agents_session(
    broker_dir: Path,
) -> None:
    """Every id a stranger could guess (the user name, the old predictable ids, ids shaped like
    ours) gets a session of its own. Only the agent's real id, which lives 0600 in its state
    directory, would take its session: that control shows the counters see a takeover."""
    host = socket.gethostname()
    old = f"mqtt-tokend-{host}-{hashlib.sha256(BASE.encode()).hexdigest()[:8]}"
    guesses = [
        "mqtt-tokend",
        "lofi-player",
        f"mqtt-tokend-{host}",
        old[:64],
        f"mqtt-tokend-{host}-{'0' * 24}",
        "mqtt-tokend-consumer-00000000",
        "mqtt-tokend-status-00000000",
    ]
    with household(broker_dir) as house:
        for guess in guesses:
            password = house.broker.passwords[STRANGER]
            stranger = Peer(house.broker.port, STRANGER, password, client_id=guess)
            assert not stranger.connect().is_failure  # type: ignore[attr-defined]
            stranger.close()
        tally = house.tally()
        assert {k: v for k, v in tally.items() if k in ZERO} == ZERO, tally

        state = house.agent_config.parent / "state"
        assert (state / CLIENT_ID_FILE).stat().st_mode & 0o777 == 0o600
        real = f"mqtt-tokend-{host[:20]}-{(state / CLIENT_ID_FILE).read_text().strip()}"
        thief = Peer(house.broker.port, STRANGER, house.broker.passwords[STRANGER], client_id=real)
        assert not thief.connect().is_failure  # type: ignore[attr-defined]
        wait_until(lambda: KICK in house.broker.log, timeout=WAIT, what="the takeover")
        thief.close()
        assert house.tally()["availability 'offline'"] >= 1


def test_a_broker_forcing_the_user_name_as_client_id_is_named_with_its_fix(
    broker_dir: Path,
) -> None:
    """An older install left `use_username_as_clientid true`: then `status` (as the agent's
    user) does take the agent's session, and says so, with the command that removes the line;
    the health check says the same instead of "the agent died". After that command (and a
    broker restart) nothing is disconnected any more."""
    with household(broker_dir, extra_conf=FORCED) as house:
        status = house.run("status")
        assert WARNING in status.stderr, status.stderr
        fix = status.stderr.split("Remove that line and restart Mosquitto: ", 1)[1]
        sed = fix.split(" && ", 1)[0]
        assert sed == (
            "sudo sed -i '/^use_username_as_clientid/d' /etc/mosquitto/conf.d/mqtt-tokend.conf"
        )
        monitor = house.run("health-check")
        assert "use_username_as_clientid" in monitor.stdout, monitor.stdout
        assert "agent is offline" not in monitor.stdout and "died" not in monitor.stdout
        assert monitor.returncode in (1, 2), monitor.stdout
        assert house.tally()["broker 'already connected' lines"] >= 1

        # The printed fix, on the running broker's configuration (no sudo, no systemd here).
        conf = house.broker.directory / "mosquitto.conf"
        command = sed.removeprefix("sudo ").replace(
            "/etc/mosquitto/conf.d/mqtt-tokend.conf", str(conf)
        )
        subprocess.run(["sh", "-c", command], check=True, timeout=WAIT)
        assert not [x for x in conf.read_text().splitlines() if x.startswith("use_username")]
        stop_broker(house.broker)
        restarted = _launch(
            house.broker.directory, house.broker.port, conf.read_text(), house.broker.passwords
        )
        try:
            for consumer in house.consumers:
                wait_until(lambda c=consumer: c.connected, timeout=WAIT * 3, what="reconnect")
            after = house.run("status")
            assert after.returncode == 0 and WARNING not in after.stderr, after.stderr
            assert KICK not in restarted.log
        finally:
            stop_broker(restarted)


@pytest.mark.parametrize(
    ("allow_zero", "named"),
    [("true", r"auto-[0-9A-F-]{36}"), ("false", r"mqtt-tokend-test-[0-9a-f]{24}")],
    ids=["broker-picks", "broker-wants-one"],
)
def test_a_command_gets_an_id_nobody_else_has(
    broker_dir: Path, allow_zero: str, named: str
) -> None:
    """Under MQTT 5 a command lets the broker pick its id (and learns it from CONNACK); a broker
    set to want one from the client (`allow_zero_length_clientid false`) gets a random one of
    ours instead of a refusal."""
    broker = start_broker(
        broker_dir / "broker", extra_conf=f"allow_zero_length_clientid {allow_zero}\n"
    )
    try:
        password = broker.passwords["homeassistant"]
        config = MqttConfig(port=broker.port, username="homeassistant", password=password)
        with oneshot(config, timeout=WAIT, purpose="test") as session:
            session.subscribe([f"{BASE}/health"], timeout=WAIT)
            assert not session.forced_client_id
        assert re.search(rf"New client connected from \S+ as {named} ", broker.log), broker.log
    finally:
        stop_broker(broker)
