"""The configuration loader: defaults, every error at once, secrets, paths, the example file."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    README_URL,
    AgentConfig,
    AlertsConfig,
    Config,
    HomeAssistantConfig,
    MqttConfig,
    PlayerConfig,
    SpotifyConfig,
    config_path,
    load_config,
    parse_config,
)
from mqtt_tokend.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"
SECRET = "sup3r-s3cr3t-v4lue"  # must never show up in a repr or an error
CLIENT_SECRET_ENV = "MQTT_TOKEND_CLIENT_SECRET"
MQTT_PASSWORD_ENV = "MQTT_TOKEND_MQTT_PASSWORD"


def parse(data: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None) -> Config:
    """parse_config with a valid [spotify] section unless `data` brings its own."""
    doc = {"spotify": {"client_id": "abc"}, **data}
    return parse_config(doc, base_dir=base_dir, environ=environ or {})


def errors_of(
    data: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, base_dir, environ)
    return caught.value.errors


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and good values -------------------------------------------------------------


def test_absent_sections_give_the_defaults(tmp_path: Path) -> None:
    file = write(tmp_path / "config.toml", '[spotify]\nclient_id = "abc"\n')
    config = load_config(file, environ={})
    assert config.spotify == SpotifyConfig(client_id="abc")
    assert config.mqtt == MqttConfig()
    assert config.agent == AgentConfig()
    assert config.homeassistant == HomeAssistantConfig()
    assert config.path == file
    assert not config.spotify.confidential


def test_values_are_normalised(tmp_path: Path) -> None:
    config = parse(
        {
            "spotify": {
                "client_id": " abc ",
                "accounts_url": "http://127.0.0.1:9000/",
                "api_url": "https://api.example.test/",
                "request_timeout": 3,
                "scopes": ["streaming"],
            },
            "agent": {"check_interval": 60, "max_backoff": 1, "log_level": "debug"},
            "mqtt": {"protocol": 3, "port": 8883, "keepalive": 60, "client_id": "pi-1"},
        },
        tmp_path,
    )
    assert config.spotify.client_id == "abc"
    assert config.spotify.accounts_url == "http://127.0.0.1:9000"
    assert config.spotify.api_url == "https://api.example.test"
    assert config.spotify.request_timeout == 3.0
    assert config.spotify.scopes == ("streaming",)
    assert isinstance(config.agent.check_interval, float)
    assert config.agent.check_interval == 60.0
    assert config.agent.log_level == "DEBUG"
    assert (config.mqtt.protocol, config.mqtt.port, config.mqtt.client_id) == (3, 8883, "pi-1")


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8888/callback",
        "http://127.0.0.1:43123",
        "http://[::1]:8888/callback",
        "https://lofi.example.com/spotify/callback",
    ],
    ids=["ipv4-loopback", "ipv4-no-path", "ipv6-loopback", "https"],
)
def test_accepted_redirect_uris(tmp_path: Path, uri: str) -> None:
    config = parse({"spotify": {"client_id": "abc", "redirect_uri": uri}}, tmp_path)
    assert config.spotify.redirect_uri == uri


# --- one bad value, one message -------------------------------------------------------------

# (dotted key, value, message after "dotted.key: ")
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("spotify.client_id", "", "required"),
    ("spotify.client_id", "   ", "required"),
    ("spotify.client_id", 123, "must be a string, got 123"),
    ("spotify.scopes", "streaming", "must be a list of non-empty strings, got 'streaming'"),
    ("spotify.scopes", ["a", 1], "must be a list of non-empty strings, got ['a', 1]"),
    ("spotify.scopes", ["a", ""], "must be a list of non-empty strings, got ['a', '']"),
    ("spotify.accounts_url", "ftp://x", "must be an http:// or https:// URL, got 'ftp://x'"),
    ("spotify.accounts_url", "http://h:0", "must be an http:// or https:// URL, got 'http://h:0'"),
    ("spotify.api_url", "http://h:x", "must be an http:// or https:// URL, got 'http://h:x'"),
    (
        "spotify.api_url",
        "api.spotify.com",
        "must be an http:// or https:// URL, got 'api.spotify.com'",
    ),
    ("spotify.request_timeout", 0, "must be a number greater than 0, got 0"),
    ("mqtt.host", "", "must not be empty"),
    ("mqtt.port", "abc", "must be an integer from 1 to 65535, got 'abc'"),
    ("mqtt.port", 0, "must be an integer from 1 to 65535, got 0"),
    ("mqtt.port", 65536, "must be an integer from 1 to 65535, got 65536"),
    ("mqtt.port", True, "must be an integer from 1 to 65535, got True"),
    ("mqtt.port", 1883.0, "must be an integer from 1 to 65535, got 1883.0"),
    ("mqtt.keepalive", 0, "must be an integer from 1 to 65535, got 0"),
    ("mqtt.tls", "yes", "must be true or false, got 'yes'"),
    ("mqtt.tls", 1, "must be true or false, got 1"),
    ("mqtt.protocol", 4, "must be 5 (MQTT 5) or 3 (MQTT 3.1.1), got 4"),
    ("mqtt.protocol", 5.0, "must be 5 (MQTT 5) or 3 (MQTT 3.1.1), got 5.0"),
    ("mqtt.client_id", 7, "must be a string, got 7"),
    ("mqtt.base_topic", "", "must not be empty, got ''"),
    (
        "mqtt.base_topic",
        "lofi/+/x",
        "must not contain the MQTT wildcards '+' or '#', got 'lofi/+/x'",
    ),
    ("mqtt.base_topic", "lofi/#", "must not contain the MQTT wildcards '+' or '#', got 'lofi/#'"),
    ("mqtt.base_topic", "/lofi", "must not start or end with '/', got '/lofi'"),
    ("mqtt.base_topic", "lofi/", "must not start or end with '/', got 'lofi/'"),
    ("mqtt.base_topic", "lo\0fi", "must not contain a NUL character, got 'lo\\x00fi'"),
    ("agent.check_interval", 0, "must be a number greater than 0, got 0"),
    ("agent.check_interval", -5.5, "must be a number greater than 0, got -5.5"),
    ("agent.check_interval", True, "must be a number greater than 0, got True"),
    ("agent.check_interval", "300", "must be a number greater than 0, got '300'"),
    ("agent.check_interval", math.inf, "must be a number greater than 0, got inf"),
    ("agent.refresh_early_seconds", -1, "must be a number at least 0, got -1"),
    ("agent.max_backoff", 0.5, "must be a number at least 1, got 0.5"),
    ("agent.min_refresh_interval", -1, "must be a number at least 0, got -1"),
    ("agent.log_level", "TRACE", "must be one of DEBUG, INFO, WARNING, ERROR, got 'TRACE'"),
    ("agent.log_level", 10, "must be one of DEBUG, INFO, WARNING, ERROR, got 10"),
    ("agent.state_dir", "", "must not be empty"),
    ("agent.key_file", 5, "must be a string, got 5"),
    ("homeassistant.enabled", "true", "must be true or false, got 'true'"),
    (
        "homeassistant.discovery_prefix",
        "ha/#",
        "must not contain the MQTT wildcards '+' or '#', got 'ha/#'",
    ),
    (
        "homeassistant.configuration_url",
        "homeassistant.local:8123",
        "must be an http:// or https:// URL, got 'homeassistant.local:8123'",
    ),
    (
        "homeassistant.configuration_url",
        "ftp://nas.local/readme",
        "must be an http:// or https:// URL, got 'ftp://nas.local/readme'",
    ),
    ("homeassistant.configuration_url", 80, "must be a string, got 80"),
]


@pytest.mark.parametrize(
    ("dotted", "value", "message"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES]
)
def test_bad_value_gives_its_message(tmp_path: Path, dotted: str, value: Any, message: str) -> None:
    section, key = dotted.split(".")
    table = {"client_id": "abc"} if section == "spotify" else {}
    assert errors_of({section: {**table, key: value}}, tmp_path) == [f"{dotted}: {message}"]


BAD_REDIRECTS = [
    (
        "http://localhost:8888/callback",
        "Spotify rejects 'localhost'; use http://127.0.0.1:8888/callback instead",
    ),
    (
        "http://LocalHost:9000/cb?x=1",
        "Spotify rejects 'localhost'; use http://127.0.0.1:9000/cb?x=1 instead",
    ),
    ("https://localhost/cb", "Spotify rejects 'localhost'; use http://127.0.0.1:8888/cb instead"),
    ("http://example.com/cb", "insecure: plain http is only allowed on 127.0.0.1 or [::1]"),
    ("http://192.168.1.5:8888/cb", "insecure: plain http is only allowed on 127.0.0.1 or [::1]"),
    (
        "http://127.0.0.1/callback",
        "a loopback URI needs a port, like http://127.0.0.1:8888/callback",
    ),
    (
        "ftp://127.0.0.1:21/x",
        "must be http://127.0.0.1:PORT/..., http://[::1]:PORT/... or https://...",
    ),
    ("callback", "must be http://127.0.0.1:PORT/..., http://[::1]:PORT/... or https://..."),
    ("http://127.0.0.1:99999/cb", "not a valid URL: 'http://127.0.0.1:99999/cb'"),
    ("https://lofi.example.com/cb#top", "must not contain a '#fragment'"),
]


@pytest.mark.parametrize(
    ("uri", "message"),
    BAD_REDIRECTS,
    ids=[
        "localhost",
        "localhost-case-query",
        "https-localhost",
        "http-remote",
        "http-lan",
        "no-port",
        "ftp",
        "not-a-url",
        "bad-port",
        "fragment",
    ],
)
def test_bad_redirect_uri_gives_its_message(tmp_path: Path, uri: str, message: str) -> None:
    errors = errors_of({"spotify": {"client_id": "abc", "redirect_uri": uri}}, tmp_path)
    assert len(errors) == 1
    assert errors[0].startswith("spotify.redirect_uri: " + message)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    errors = errors_of(
        {
            "spotify": {"redirect_uri": "http://localhost:8888/callback"},
            "mqtt": {"port": "abc", "protocol": 4, "base_topic": "/x/#"},
            "agent": {"colour": "red", "max_backoff": 0},
            "homeassistant": {"enabled": "no"},
            "foo": {"bar": 1},
        },
        tmp_path,
    )
    assert "unknown section [foo]" in errors
    assert "spotify.client_id: required" in errors
    assert any(e.startswith("spotify.redirect_uri: Spotify rejects 'localhost'") for e in errors)
    assert "mqtt.port: must be an integer from 1 to 65535, got 'abc'" in errors
    assert any(e.startswith("mqtt.protocol:") for e in errors)
    assert len([e for e in errors if e.startswith("mqtt.base_topic:")]) == 2
    assert "agent.colour: unknown key" in errors
    assert any(e.startswith("agent.max_backoff:") for e in errors)
    assert any(e.startswith("homeassistant.enabled:") for e in errors)
    assert len(errors) == 10
    assert str(ConfigError(errors)) == "; ".join(errors)


UNKNOWN = [
    ({"foo": {"a": 1}}, "unknown section [foo]"),
    ({"agent": {"colour": "red"}}, "agent.colour: unknown key"),
    (
        {"agent": {"check_intervall": 5}},
        "agent.check_intervall: unknown key (did you mean check_interval?)",
    ),
    ({"spotify": {"client_id": "abc", "extra": {"x": 1}}}, "spotify.extra: unknown key"),
    (
        {"client_id": "abc"},
        "client_id: unknown key at the top level; keys belong in a section: "
        "[spotify], [mqtt], [agent], [homeassistant], [player] or [alerts]",
    ),
    ({"mqtt": "localhost"}, "mqtt: must be a table ([mqtt]), got 'localhost'"),
]


@pytest.mark.parametrize(
    ("data", "message"),
    UNKNOWN,
    ids=["section", "key", "typo-hint", "subtable", "top-level-key", "section-not-a-table"],
)
def test_unknown_keys_and_sections_are_errors(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    assert errors_of(data, tmp_path) == [message]


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


# --- paths --------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    for name in ("ca.pem", "tls/client.crt", "tls/client.key", "mqtt_password"):
        write(etc / name, "x\n")
    (etc / "mqtt_password").chmod(0o600)  # a secret file others can read is refused
    write(
        etc / "config.toml",
        '[spotify]\nclient_id = "abc"\n'
        '[mqtt]\nusername = "agent"\npassword_file = "mqtt_password"\ntls = true\n'
        'ca_file = "ca.pem"\ncert_file = "tls/client.crt"\nkey_file = "./tls/client.key"\n'
        '[agent]\nstate_dir = "state"\nkey_file = "../keys/fernet.key"\n',
    )
    monkeypatch.chdir(tmp_path)  # a relative --config still anchors paths at its directory
    config = load_config("etc/config.toml", environ={})
    assert config.path == etc / "config.toml"
    assert config.mqtt.ca_file == etc / "ca.pem"
    assert config.mqtt.cert_file == etc / "tls/client.crt"
    assert config.mqtt.key_file == etc / "tls/client.key"
    assert config.mqtt.password == "x"
    assert config.agent.state_dir == etc / "state"
    assert config.agent.key_file == etc / "../keys/fernet.key"


def test_home_is_expanded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = parse(
        {"agent": {"state_dir": "~/state", "key_file": "/abs/fernet.key"}},
        tmp_path,
        {"HOME": str(home)},
    )
    assert config.agent.state_dir == home / "state"
    assert config.agent.key_file == Path("/abs/fernet.key")


def test_empty_optional_paths_mean_unset(tmp_path: Path) -> None:
    config = parse(
        {"mqtt": {"tls": True, "ca_file": "", "cert_file": "", "key_file": ""}}, tmp_path
    )
    assert (config.mqtt.ca_file, config.mqtt.cert_file, config.mqtt.key_file) == (None, None, None)


TLS_FILES = [
    ({"tls": True, "ca_file": "nope.pem"}, ["mqtt.ca_file: no such file: {d}/nope.pem"]),
    ({"tls": False, "ca_file": "nope.pem"}, []),
    (
        {"tls": True, "cert_file": "c.crt"},
        ["mqtt.key_file: required when mqtt.cert_file is set (they go together)"],
    ),
    (
        {"key_file": "k.key"},
        ["mqtt.cert_file: required when mqtt.key_file is set (they go together)"],
    ),
    ({"tls": True, "cert_file": "c.crt", "key_file": "k.key"}, []),
]


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    TLS_FILES,
    ids=["missing-ca", "missing-ca-tls-off", "cert-without-key", "key-without-cert", "pair"],
)
def test_tls_files(tmp_path: Path, mqtt: dict[str, Any], expected: list[str]) -> None:
    write(tmp_path / "c.crt", "cert")
    write(tmp_path / "k.key", "key")
    if expected:
        assert errors_of({"mqtt": mqtt}, tmp_path) == [e.format(d=tmp_path) for e in expected]
    else:
        assert parse({"mqtt": mqtt}, tmp_path).mqtt.tls is mqtt.get("tls", False)


# --- files and where they come from ---------------------------------------------------------


def test_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml", environ={})
    [message] = caught.value.errors
    for part in (
        str(tmp_path / "nope.toml"),
        "--config PATH",
        CONFIG_ENV,
        "deploy/config.example.toml",
    ):
        assert part in message


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path / "config.toml", '[spotify]\nclient_id = "abc\n')
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    [message] = caught.value.errors
    assert str(file) in message
    assert re.search(r"line 2, column \d+", message)


@pytest.mark.parametrize(
    "case", ["denied", "directory", "not-utf8"], ids=["denied", "directory", "not-utf8"]
)
def test_unreadable_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    file = tmp_path / "config.toml"
    if case == "directory":
        file.mkdir()
        expected = f"cannot read config file {file}: Is a directory"
    elif case == "not-utf8":
        file.write_bytes(b"[spotify]\nclient_id = '\xff'\n")
        expected = f"config file {file} is not UTF-8 text"
    else:
        write(file, '[spotify]\nclient_id = "abc"\n')

        def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "open", denied)  # root ignores file modes
        expected = f"cannot read config file {file}: permission denied"
    with pytest.raises(ConfigError) as caught:
        load_config(file, environ={})
    [message] = caught.value.errors
    assert message.startswith(expected)


CONFIG_PATHS = [
    ("/x/explicit.toml", {CONFIG_ENV: "/x/env.toml"}, "/x/explicit.toml"),
    (None, {CONFIG_ENV: "/x/env.toml"}, "/x/env.toml"),
    (None, {CONFIG_ENV: ""}, str(DEFAULT_CONFIG_PATH)),
    (None, {}, str(DEFAULT_CONFIG_PATH)),
    ("~/c.toml", {"HOME": "/home/pi"}, "/home/pi/c.toml"),
    (None, {CONFIG_ENV: "~/c.toml", "HOME": "/home/pi"}, "/home/pi/c.toml"),
]


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    CONFIG_PATHS,
    ids=["explicit-wins", "env", "empty-env-ignored", "default", "explicit-home", "env-home"],
)
def test_config_path_precedence(
    explicit: str | None, environ: dict[str, str], expected: str
) -> None:
    assert config_path(explicit, environ) == Path(expected)


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path / "c.toml", '[spotify]\nclient_id = "abc"\n')
    monkeypatch.setenv(CONFIG_ENV, str(file))
    monkeypatch.setenv(CLIENT_SECRET_ENV, SECRET)
    config = load_config()
    assert config.path == file
    assert config.spotify.confidential


# --- the values themselves ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (SpotifyConfig(client_id="abc"), "client_id"),
        (MqttConfig(), "port"),
        (AgentConfig(), "state_dir"),
        (HomeAssistantConfig(), "enabled"),
    ],
    ids=["spotify", "mqtt", "agent", "homeassistant"],
)
def test_config_is_frozen(value: object, field: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


def test_whole_config_is_frozen(tmp_path: Path) -> None:
    config = parse({}, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mqtt = MqttConfig()  # type: ignore[misc]


# --- the shipped example -------------------------------------------------------------------


def test_example_config_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["spotify"]["client_id"] = "0123456789abcdef0123456789abcdef"
    config = parse_config(data, base_dir=EXAMPLE.parent, environ={})
    assert config.spotify == SpotifyConfig(client_id="0123456789abcdef0123456789abcdef")
    assert config.mqtt == MqttConfig()
    assert config.agent == AgentConfig()
    assert config.homeassistant == HomeAssistantConfig()


def test_unedited_example_asks_only_for_the_client_id(tmp_path: Path) -> None:
    target = write(tmp_path / "config.toml", EXAMPLE.read_text(encoding="utf-8"))
    with pytest.raises(ConfigError) as caught:
        load_config(target, environ={})
    assert caught.value.errors == ["spotify.client_id: required"]


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S))
    classes = {
        "spotify": SpotifyConfig,
        "mqtt": MqttConfig,
        "agent": AgentConfig,
        "homeassistant": HomeAssistantConfig,
        "player": PlayerConfig,
        "alerts": AlertsConfig,
    }
    assert set(sections) == set(classes)
    for name, cls in classes.items():
        keys = {f.name for f in dataclasses.fields(cls)}
        keys |= {"client_secret_file"} if name == "spotify" else set()
        keys |= {"password_file"} if name == "mqtt" else set()
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", sections[name], re.M), f"{name}.{key} undocumented"


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


def test_every_default_is_the_dataclass_default(tmp_path: Path) -> None:
    # The loader has no defaults of its own: an empty file gives exactly the field defaults.
    config = parse({}, tmp_path)
    for section in (config.mqtt, config.agent, config.homeassistant, config.player, config.alerts):
        assert section == type(section)()
    assert config.spotify == SpotifyConfig(client_id="abc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, README_URL),
        ("http://homeassistant.local:8123/", "http://homeassistant.local:8123"),
        ("https://example.org/fork#readme", "https://example.org/fork#readme"),
        ("", ""),
    ],
    ids=["default", "http", "https", "empty"],
)
def test_homeassistant_configuration_url(tmp_path: Path, value: str | None, expected: str) -> None:
    table = {} if value is None else {"configuration_url": value}
    config = parse({"spotify": {"client_id": "abc"}, "homeassistant": table}, tmp_path)
    assert config.homeassistant.configuration_url == expected
