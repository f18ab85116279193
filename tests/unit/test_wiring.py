"""The agent's MQTT client id: unguessable by default, one per state directory, overridable.

A broker without use_username_as_clientid hands a session to whoever connects with its client
id, so a predictable default (`mqtt-tokend-<host>-<hash of the base topic>`, as before) let any
account disconnect the agent."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

import pytest

from mqtt_tokend.config import Config, parse_config
from mqtt_tokend.daemon.wiring import CLIENT_ID_FILE, agent_client_id


def config(state_dir: Path, **mqtt: object) -> Config:
    data = {"spotify": {"client_id": "abc"}, "mqtt": mqtt, "agent": {"state_dir": str(state_dir)}}
    return parse_config(data, base_dir=state_dir.parent, environ={})


def test_the_default_id_is_readable_random_and_kept_by_the_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    first = agent_client_id(config(state))
    assert re.fullmatch(
        rf"mqtt-tokend-{re.escape(socket.gethostname()[:20])}-[0-9a-f]{{24}}", first
    )
    old = f"mqtt-tokend-{socket.gethostname()}-{hashlib.sha256(b'lofi/spotify').hexdigest()[:8]}"
    assert first != old
    stored = state / CLIENT_ID_FILE
    assert stored.stat().st_mode & 0o777 == 0o600
    assert first.endswith(stored.read_text().strip())
    assert agent_client_id(config(state)) == first, "a restart keeps its session name"
    other = tmp_path / "other"
    other.mkdir()
    assert agent_client_id(config(other)) != first, "another state directory, another id"


def test_a_damaged_id_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / CLIENT_ID_FILE).write_text("mqtt-tokend-pi-1a2b3c\n")
    chosen = agent_client_id(config(tmp_path))
    assert chosen.endswith((tmp_path / CLIENT_ID_FILE).read_text().strip())
    assert not chosen.endswith("1a2b3c")


def test_a_state_directory_it_cannot_write_still_gets_a_random_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "state"
    not_a_directory.write_text("")  # no file can be made in it, not even by root
    first = agent_client_id(config(not_a_directory))
    second = agent_client_id(config(not_a_directory))
    assert first != second, "no file: a random id per process"
    assert re.fullmatch(r"mqtt-tokend-.+-[0-9a-f]{24}", first)
    assert "a new client id each start" in caplog.text


def test_mqtt_client_id_in_the_config_wins(tmp_path: Path) -> None:
    assert agent_client_id(config(tmp_path, client_id="my-agent")) == "my-agent"
    assert not (tmp_path / CLIENT_ID_FILE).exists()
