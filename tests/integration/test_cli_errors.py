"""Bad input to the real CLI (subprocesses): each error says what is wrong and how to fix it,
exits with its code, and loses nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.integration.checker import ContractChecker
from tests.integration.conftest import CLI, AgentProcess, cli
from tests.integration.watch import Watcher

pytestmark = pytest.mark.integration


# ---- bad input ------------------------------------------------------------------------------


def test_bad_config_lists_every_error_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[spotify]\nclient_id = ""\ncolour = 1\n[mqtt]\nport = "abc"\n')
    result = subprocess.run(
        [*CLI, "--config", str(path), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    for key in ("spotify.client_id", "spotify.colour", "mqtt.port"):
        assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_localhost_redirect_uri_is_refused_with_the_fix(config_file: Path) -> None:
    text = config_file.read_text()
    config_file.write_text(text.replace("http://127.0.0.1:", "http://localhost:"))
    result = cli(config_file, "auth")
    assert result.returncode == 78
    assert "127.0.0.1" in result.stderr and "localhost" in result.stderr


def test_missing_key_file_says_how_to_make_one(logged_in: Path) -> None:
    (logged_in.parent / "fernet.key").unlink()
    result = cli(logged_in, "run")
    assert result.returncode == 78, "configuration: systemd must not restart it every 10 s"
    assert "mqtt-tokend keygen" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_token_files_are_reported_and_kept(
    logged_in: Path, watcher: Watcher, base_topic: str
) -> None:
    state = logged_in.parent / "state"
    for name in ("spotify_tokens.json", "spotify_tokens_backup.json"):
        (state / name).write_bytes(b'{"version": 1, "tokens": "gAAAA-truncated')
    agent = AgentProcess(logged_in).start()
    try:
        record = watcher.wait_for(
            Topics(base_topic).health, lambda m: m.json()["state"] == "auth_required"
        ).json()
        assert "spotify_tokens.json" in record["message"]
        assert "Nothing was deleted" in record["message"]
        assert "mqtt-tokend" in record["instructions"]
        assert (state / "spotify_tokens.json").read_bytes().startswith(b'{"version": 1')
    finally:
        agent.stop()


def test_get_token_with_the_wrong_key_is_a_clear_error(
    agent: AgentProcess, watcher: Watcher, base_topic: str, contract: ContractChecker
) -> None:
    watcher.wait_for(Topics(base_topic).token)
    contract.remember_keys()  # the token on the broker stays checkable after the key is replaced
    key = agent.config.parent / "fernet.key"
    key.unlink()
    assert cli(agent.config, "keygen").returncode == 0
    result = cli(agent.config, "get-token", "--timeout", "3")
    assert result.returncode == 1
    assert "does not decrypt" in result.stderr and "Traceback" not in result.stderr


def test_get_token_without_a_broker_is_a_clear_error(
    logged_in: Path, broker: PrivateMosquitto
) -> None:
    broker.stop()
    result = cli(logged_in, "get-token", "--timeout", "2")
    assert result.returncode == 1
    assert "cannot reach the MQTT broker" in result.stderr
    check = cli(logged_in, "check", "--timeout", "2")
    assert check.returncode == 3


def test_reset_asks_first_and_then_removes_the_login(logged_in: Path) -> None:
    state = logged_in.parent / "state"
    declined = cli(logged_in, "reset", stdin="no\n")
    assert declined.returncode == 1 and (state / "spotify_tokens.json").exists()
    done = cli(logged_in, "reset", "--yes")
    assert done.returncode == 0
    assert not (state / "spotify_tokens.json").exists()
    assert not (state / "spotify_tokens_backup.json").exists()
