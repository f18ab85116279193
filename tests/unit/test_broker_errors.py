"""What a failed broker connection means to a person: a refused login is its own error, names
where the password came from (never the password), and the monitor judges it apart from an
unreachable broker and from a broker that forces the user name as client id."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from mqtt_tokend.adapters.broker_errors import password_source, refused, refused_login
from mqtt_tokend.adapters.mqtt import session_id
from mqtt_tokend.config import MQTT_PASSWORD_ENV, MqttConfig, load_config
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.wording import forced_client_id_warning
from mqtt_tokend.core.monitor_rules import Observation, assess
from mqtt_tokend.errors import BrokerError, BrokerLoginRefused

NOW = 1_800_000_000.0
SECRET = "s3cret-broker-password"


def write(directory: Path, mqtt: str) -> Path:
    path = directory / "config.toml"
    path.write_text(f'[spotify]\nclient_id = "abc"\n[mqtt]\nusername = "agent"\n{mqtt}')
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("reason", "login"),
    [
        ("Bad user name or password", True),
        ("Not authorized", True),
        ("Bad authentication method", True),
        ("Server unavailable", False),
        ("Banned", False),
        ("Client identifier not valid", False),
    ],
)
@pytest.mark.parametrize("username", ["agent", ""], ids=["user", "anonymous"])
def test_only_a_refused_login_is_a_login_error(reason: str, login: bool, username: str) -> None:
    """6 reasons x 2 kinds of client = 12 cases."""
    error = refused(MqttConfig(port=1884, username=username), reason)
    assert isinstance(error, BrokerLoginRefused) is login
    assert isinstance(error, BrokerError)
    assert "127.0.0.1:1884" in str(error) and reason in str(error)
    if login:
        who = "user 'agent'" if username else "an anonymous client"
        assert f"is up but refused the login of {who}" in str(error)


@pytest.mark.parametrize("where", ["environment", "relative file", "absolute file", "inline"])
def test_the_source_of_the_password_is_named_never_the_password(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secrets" / "mqtt_password"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    secret.chmod(0o600)
    monkeypatch.delenv(MQTT_PASSWORD_ENV, raising=False)
    expected = {
        "environment": f"${MQTT_PASSWORD_ENV}",
        "relative file": f"{secret} (mqtt.password_file)",
        "absolute file": f"{secret} (mqtt.password_file)",
        "inline": f"mqtt.password in {tmp_path / 'config.toml'}",
    }[where]
    if where == "environment":
        monkeypatch.setenv(MQTT_PASSWORD_ENV, SECRET)
        path = write(tmp_path, f'password_file = "{secret}"\n')
    elif where == "relative file":
        path = write(tmp_path, 'password_file = "secrets/mqtt_password"\n')
    elif where == "absolute file":
        path = write(tmp_path, f'password_file = "{secret}"\n')
    else:
        path = write(tmp_path, f'password = "{SECRET}"\n')
    config = load_config(path)
    assert password_source(config) == expected
    problem, fix = refused_login(config, BrokerLoginRefused("the broker refused agent"))
    assert problem == f"the broker refused agent: the password sent comes from {expected}"
    assert "sudo mosquitto_passwd /etc/mosquitto/mqtt-tokend/passwd agent" in fix
    assert SECRET not in problem + fix


def test_no_password_at_all_is_said(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert (
        password_source(config, environ={})
        == f"{tmp_path / 'config.toml'} (no mqtt.password_file set)"
    )


def test_a_refused_login_is_critical_with_its_own_event_and_fix() -> None:
    """Even beside a status file that says ok, and never as `broker_unreachable`."""
    observation = Observation(
        {"state": "ok", "expires_at": NOW + 1800, "checked_at": NOW},
        None,
        broker_reachable=False,
        login_refused=("the broker refused agent", "give it the password"),
    )
    verdict = assess(observation, now=NOW, check_interval=300, config_path=None)
    assert verdict.code == ExitCode.CRITICAL
    assert verdict.event == notices.BROKER_REFUSED
    assert (verdict.reason, verdict.instructions) == (
        "the broker refused agent",
        "give it the password",
    )


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("ok", ExitCode.WARNING),
        ("retrying", ExitCode.WARNING),
        ("auth_required", ExitCode.CRITICAL),
    ],
)
def test_a_forced_client_id_is_not_a_dead_agent(state: str, code: ExitCode) -> None:
    """The check's own connection took the agent's session (its `offline` is our doing): the
    verdict names the broker setting, at least WARNING, and judges the record itself."""
    warning = forced_client_id_warning("mqtt-tokend")
    observation = Observation(
        {"state": state, "message": "m", "expires_at": NOW + 1800, "checked_at": NOW},
        False,
        broker_reachable=True,
        forced_client_id=warning,
    )
    verdict = assess(observation, now=NOW, check_interval=300, config_path=None)
    assert verdict.code == code
    assert verdict.reason.startswith(warning)
    assert verdict.event != notices.AGENT_DEAD
    stale = replace(observation, health={**(observation.health or {}), "checked_at": NOW - 3600})
    dead = assess(stale, now=NOW, check_interval=300, config_path=None)
    assert (dead.code, dead.event) == (ExitCode.CRITICAL, notices.AGENT_DEAD), "still seen"


def test_session_ids_are_unguessable_and_never_repeat() -> None:
    ids = {session_id("status") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"mqtt-tokend-status-[0-9a-f]{24}", i) for i in ids)
