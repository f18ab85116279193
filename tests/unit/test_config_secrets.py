"""The configuration's secrets: where each comes from and in which order, errors that name the key
and path but never the value, and secrets in files others can read refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.config import (
    AgentConfig,
    Config,
    HomeAssistantConfig,
    MqttConfig,
    SpotifyConfig,
    load_config,
)
from mqtt_tokend.errors import ConfigError
from tests.unit.config_helpers import (
    CLIENT_SECRET_ENV,
    MQTT_PASSWORD_ENV,
    SECRET,
    errors_of,
    parse,
    write,
)

# --- secrets ----------------------------------------------------------------------------------

SECRETS = [
    ("spotify", "client_secret", CLIENT_SECRET_ENV),
    ("mqtt", "password", MQTT_PASSWORD_ENV),
]


def secret_of(config: Config, section: str) -> str:
    return config.spotify.client_secret if section == "spotify" else config.mqtt.password


def with_secret_table(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A document whose `section` holds `values` (plus what that section needs besides)."""
    base = {"client_id": "abc"} if section == "spotify" else {"username": "agent"}
    return {section: {**base, **values}}


PRECEDENCE = [
    ({"inline": "from-inline"}, "from-inline"),
    ({"file": "from-file\n"}, "from-file"),
    ({"file": "from-file\r\n"}, "from-file"),
    ({"env": "from-env", "inline": "from-inline"}, "from-env"),
    ({"env": "from-env", "missing_file": True}, "from-env"),
    ({"env": "", "inline": "from-inline"}, "from-inline"),
    ({}, ""),
]


@pytest.mark.parametrize(
    ("section", "key", "env_name"), SECRETS, ids=["client_secret", "mqtt_password"]
)
@pytest.mark.parametrize(
    ("sources", "expected"),
    PRECEDENCE,
    ids=[
        "inline",
        "file",
        "file-crlf",
        "env-over-inline",
        "env-over-file-unread",
        "empty-env-ignored",
        "none",
    ],
)
def test_secret_sources_and_precedence(
    tmp_path: Path,
    *,
    section: str,
    key: str,
    env_name: str,
    sources: dict[str, Any],
    expected: str,
) -> None:
    values: dict[str, Any] = {}
    if "inline" in sources:
        values[key] = sources["inline"]
    if "file" in sources:
        write(tmp_path / "secrets" / key, sources["file"])
        values[f"{key}_file"] = f"secrets/{key}"  # relative to the config's directory
    if sources.get("missing_file"):
        values[f"{key}_file"] = str(tmp_path / "absent")
    environ = {env_name: sources["env"]} if "env" in sources else {}
    config = parse(with_secret_table(section, values), tmp_path, environ)
    assert secret_of(config, section) == expected
    if section == "spotify":
        assert config.spotify.confidential is bool(expected)


SECRET_ERRORS = [
    ("both", "{key}: set either {key} or {key}_file, not both"),
    ("missing", "{key}_file: no such file: {path}"),
    ("empty", "{key}_file: {path} is empty"),
    ("directory", "{key}_file: cannot read {path}: Is a directory"),
    ("not-utf8", "{key}_file: {path} is not UTF-8 text"),
    ("wrong-type", "{key}: must be a string, got list"),
]


@pytest.mark.parametrize(
    ("section", "key", "env_name"), SECRETS, ids=["client_secret", "mqtt_password"]
)
@pytest.mark.parametrize(("case", "message"), SECRET_ERRORS, ids=[c for c, _ in SECRET_ERRORS])
def test_secret_errors_name_the_key_and_path_never_the_value(
    tmp_path: Path, *, section: str, key: str, env_name: str, case: str, message: str
) -> None:
    path = tmp_path / "secret"
    values: dict[str, Any] = {f"{key}_file": str(path)}
    if case == "both":
        write(path, SECRET)
        values[key] = SECRET
    elif case == "empty":
        write(path, "\n")
    elif case == "directory":
        path.mkdir()
    elif case == "not-utf8":
        path.write_bytes(b"\xff" + SECRET.encode())
    elif case == "wrong-type":
        values = {key: [SECRET]}
    errors = errors_of(with_secret_table(section, values), tmp_path)
    assert errors == [f"{section}." + message.format(key=key, path=path)]
    assert SECRET not in str(errors)


def test_unreadable_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "client_secret", SECRET)

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # root ignores file modes
    errors = errors_of({"spotify": {"client_id": "abc", "client_secret_file": str(path)}}, tmp_path)
    assert errors == [f"spotify.client_secret_file: cannot read {path}: Permission denied"]


def test_mqtt_password_needs_a_username(tmp_path: Path) -> None:
    errors = errors_of({}, tmp_path, {MQTT_PASSWORD_ENV: SECRET})
    assert errors == [
        "mqtt.password: set, but mqtt.username is empty (MQTT sends no password without one)"
    ]


@pytest.mark.parametrize("route", ["inline", "file", "env"], ids=["inline", "file", "env"])
def test_secrets_never_appear_in_repr_redacted_or_errors(tmp_path: Path, route: str) -> None:
    write(tmp_path / "pw", SECRET + "\n")
    spotify: dict[str, Any] = {"client_id": "abc"}
    mqtt: dict[str, Any] = {"username": "agent"}
    environ: dict[str, str] = {}
    if route == "inline":
        spotify["client_secret"], mqtt["password"] = SECRET, SECRET
    elif route == "file":
        spotify["client_secret_file"], mqtt["password_file"] = "pw", "pw"
    else:
        environ = {CLIENT_SECRET_ENV: SECRET, MQTT_PASSWORD_ENV: SECRET}
    config = parse({"spotify": spotify, "mqtt": mqtt}, tmp_path, environ)
    assert (config.spotify.client_secret, config.mqtt.password) == (SECRET, SECRET)
    redacted = config.redacted()
    assert redacted["spotify"]["client_secret"] == "***"
    assert redacted["mqtt"]["password"] == "***"
    for text in (
        repr(config),
        str(config),
        repr(config.spotify),
        repr(config.mqtt),
        json.dumps(redacted),
    ):
        assert SECRET not in text
    # the same secrets next to a pile of errors: the messages must not carry them either
    with pytest.raises(ConfigError) as caught:
        parse(
            {"spotify": {**spotify, "scopes": 1}, "mqtt": {**mqtt, "port": 0, "pwd": SECRET}},
            tmp_path,
            environ,
        )
    assert len(caught.value.errors) == 3
    assert SECRET not in str(caught.value)


def test_a_secret_in_broken_toml_is_not_echoed(tmp_path: Path) -> None:
    file = write(
        tmp_path / "config.toml", f'[spotify]\nclient_id = "abc"\nclient_secret = {SECRET}\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    assert SECRET not in str(caught.value)


def test_redacted_is_plain_data_with_every_value(tmp_path: Path) -> None:
    file = write(tmp_path / "config.toml", '[spotify]\nclient_id = "abc"\n')
    redacted = load_config(file, environ={}).redacted()
    assert json.loads(json.dumps(redacted)) == redacted
    assert redacted["path"] == str(file)
    assert redacted["spotify"]["client_secret"] == ""
    assert redacted["mqtt"]["password"] == ""
    assert redacted["spotify"]["scopes"] == list(SpotifyConfig.scopes)
    assert redacted["agent"]["state_dir"] == "/var/lib/mqtt-tokend"
    for section in (
        SpotifyConfig(client_id=""),
        MqttConfig(),
        AgentConfig(),
        HomeAssistantConfig(),
    ):
        name = {SpotifyConfig: "spotify", MqttConfig: "mqtt", AgentConfig: "agent"}.get(
            type(section), "homeassistant"
        )
        assert set(redacted[name]) == {f.name for f in dataclasses.fields(section)}


# ---- secrets that others can read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [("spotify", "client_secret"), ("mqtt", "password"), ("alerts", "smtp_password")],
    ids=["client-secret", "mqtt-password", "smtp-password"],
)
def test_an_inline_secret_in_a_world_readable_config_is_refused(
    tmp_path: Path, section: str, key: str
) -> None:
    extra = '\nusername = "agent"' if section == "mqtt" else ""
    secret = f'{key} = "TopSecret-123"{extra}\n'
    body = '[spotify]\nclient_id = "abc"\n'
    body += secret if section == "spotify" else f"[{section}]\n{secret}"
    path = tmp_path / "config.toml"
    path.write_text(body)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert f"{section}.{key}" in message and f"sudo chmod o-rwx {path}" in message
    assert "TopSecret-123" not in message
    path.chmod(0o640)
    assert load_config(path, environ={}).path == path


def test_a_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "client_secret"
    secret.write_text("TopSecret-123\n")
    secret.chmod(0o644)
    path = tmp_path / "config.toml"
    path.write_text('[spotify]\nclient_id = "abc"\nclient_secret_file = "client_secret"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert f"chmod 600 {secret}" in str(caught.value)
    secret.chmod(0o600)
    assert load_config(path, environ={}).spotify.client_secret == "TopSecret-123"


def test_a_world_readable_secret_file_under_home_uses_the_given_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    secret = write(home / "mqtt_password", "TopSecret-123\n")
    secret.chmod(0o644)
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))  # not the HOME the loader is given
    path = write(
        tmp_path / "config.toml",
        '[spotify]\nclient_id = "abc"\n[mqtt]\nusername = "agent"\n'
        'password_file = "~/mqtt_password"\n',
    )
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"HOME": str(home)})
    assert caught.value.errors == [
        f"mqtt.password_file: every user can read {secret}; fix it with: chmod 600 {secret}"
    ]
