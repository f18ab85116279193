"""A broker that refuses the password is its own error (issue 16, item 8) in `check`, `status`
and `health-check`: on a Mosquitto started from the shipped files, up and answering, each says
the login was refused, names where the password came from and how to make the two sides agree.
Never OK (the agent's status file still says ok), never "cannot reach"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters.store import read_status
from mqtt_tokend.cli.monitor import MEMORY_FILE
from mqtt_tokend.config import MQTT_PASSWORD_ENV
from mqtt_tokend.contract.notices import NOTICE_FILE
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.deploy.conftest import MOSQUITTO, WAIT, Broker
from tests.deploy.household import logged_in_config, secret_file
from tests.integration.conftest import CLI, AgentProcess
from tests.integration.test_broker_security import with_mqtt
from tests.integration.watch import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

WRONG = "not-the-agents-password"
SOURCES = ("password_file", "inline", "environment")
COMMANDS = ("check", "status", "health-check")
EXPECTED_EXIT = {"check": 2, "status": 1, "health-check": 2}


@pytest.fixture
def logged_in_agent(broker: Broker, tmp_path: Path) -> Iterator[Path]:
    """An agent that ran with the right password (its status file says ok), then stopped."""
    with SpotifyEmulator() as emulator:
        home = tmp_path / "agent"
        config = logged_in_config(home, port=broker.port, emulator=emulator)
        agent = AgentProcess(config).start()
        try:
            state = home / "state"
            wait_until(
                lambda: (read_status(state) or {}).get("state") == "ok",
                timeout=WAIT * 3,
                what="the agent's ok status file",
            )
        finally:
            agent.stop()
        yield config


def wrong_password(config: Path, source: str, protocol: int) -> tuple[Path, dict[str, str], str]:
    """A copy of the config whose password the broker refuses, the environment to run it in,
    and how the error must name the password's source."""
    env = {k: v for k, v in os.environ.items() if k != MQTT_PASSWORD_ENV}
    name = f"{source}-{protocol}"
    if source == "password_file":
        wrong = secret_file(config.with_name(f"wrong-{name}"), WRONG)
        variant = with_mqtt(config, name, password_file=str(wrong), protocol=protocol)
        return variant, env, f"the password sent comes from {wrong} (mqtt.password_file)"
    if source == "inline":
        variant = with_mqtt(config, name, password_file=None, password=WRONG, protocol=protocol)
        return variant, env, f"the password sent comes from mqtt.password in {variant}"
    variant = with_mqtt(config, name, protocol=protocol)  # keeps the right password_file
    return variant, env | {MQTT_PASSWORD_ENV: WRONG}, f"comes from ${MQTT_PASSWORD_ENV}"


@pytest.mark.parametrize("protocol", [5, 3], ids=["mqtt5", "mqtt3.1.1"])
@pytest.mark.parametrize("source", SOURCES)
def test_a_refused_login_is_its_own_error_in_check_status_and_health_check(
    logged_in_agent: Path, broker: Broker, source: str, protocol: int
) -> None:
    """3 sources x 2 protocols x 3 commands = 18 cases. On main `check` answered OK (exit 0)
    from the status file and `health-check` said it could not reach the broker."""
    state = logged_in_agent.parent / "state"
    assert (read_status(state) or {}).get("state") == "ok", "a fallback would say OK"
    config, env, named = wrong_password(logged_in_agent, source, protocol)
    refused = f"the broker at 127.0.0.1:{broker.port} is up but refused the login of user "
    for command in COMMANDS:
        result = subprocess.run(
            [*CLI, "--config", str(config), command, "--timeout", "5"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        said = result.stdout + result.stderr
        assert result.returncode == EXPECTED_EXIT[command], (command, said)
        assert refused + "'mqtt-tokend'" in said, (command, said)
        assert named in said, (command, said)
        assert "sudo mosquitto_passwd /etc/mosquitto/mqtt-tokend/passwd mqtt-tokend" in said
        assert "cannot reach" not in said and "unreachable" not in said, (command, said)
        assert not result.stdout.startswith("OK"), (command, said)
        assert "Traceback" not in said and WRONG not in said
    notice = (state / NOTICE_FILE).read_text()
    assert "refused the login" in notice and "sudo mosquitto_passwd" in notice
    assert json.loads((state / MEMORY_FILE).read_text())["event"] == "broker_refused"
