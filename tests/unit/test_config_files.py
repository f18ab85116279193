"""The configuration's paths and files: relative paths, `~`, TLS files, a missing, broken or
unreadable file, and which file is read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path, load_config
from mqtt_tokend.errors import ConfigError
from tests.unit.config_helpers import CLIENT_SECRET_ENV, SECRET, errors_of, parse, write

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
