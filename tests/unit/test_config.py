"""The configuration loader: defaults, one message per bad value, every error at once, the example
file. Secrets and files have their own test files."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.config import (
    README_URL,
    AgentConfig,
    AlertsConfig,
    HomeAssistantConfig,
    MqttConfig,
    PlayerConfig,
    SpotifyConfig,
    load_config,
    parse_config,
)
from mqtt_tokend.errors import ConfigError
from tests.unit.config_helpers import EXAMPLE, errors_of, parse, write

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
