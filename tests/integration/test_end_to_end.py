"""The product end to end: real CLI subprocesses, a private Mosquitto, the emulator over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import CLI, AgentProcess, approve, cli, login
from tests.integration.helpers import healthy, me_status, mosquitto_pub
from tests.integration.watch import Seen, Watcher, wait_until

pytestmark = pytest.mark.integration


def cipher_for(config: Path) -> TokenCipher:
    return TokenCipher.from_file(config.parent / "fernet.key")


def access_token(config: Path, message: Seen) -> str:
    token: str = cipher_for(config).decrypt_json(message.payload)["access_token"]
    return token


def retained(broker: PrivateMosquitto, topic: str) -> bytes | None:
    """The retained message on `topic` as a new mosquitto_sub client sees it, or None."""
    result = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "--retained-only",
            "-C",
            "1",
            "-W",
            "1",
            "-N",
        ],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.stdout or None if result.returncode == 0 else None


# ---- login -------------------------------------------------------------------------------


def test_auth_prints_the_url_alone_and_stores_encrypted_tokens(config_file: Path) -> None:
    result = login(config_file)
    assert result.returncode == 0, result.stderr
    url = result.stdout.splitlines()[0]
    assert url.startswith("http://127.0.0.1:") and "code_challenge_method=S256" in url
    assert "Logged in to Spotify as" in result.stderr
    state = config_file.parent / "state"
    tokens = state / "spotify_tokens.json"
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert (state / "spotify_tokens_backup.json").exists()
    assert not (state / "pending_auth.json").exists()
    record = json.loads(tokens.read_text())
    assert set(record) == {"version", "tokens"}  # only ciphertext


def test_auth_refuses_a_redirect_from_another_login(config_file: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "--config", str(config_file), "auth"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    redirect = approve(process.stdout.readline().strip())
    forged = redirect.replace("state=", "state=x")
    _, err = process.communicate(forged + "\n", timeout=30)
    assert process.returncode == 1
    assert "another login attempt" in err
    assert not (config_file.parent / "state" / "spotify_tokens.json").exists()


def test_auth_listen_serves_the_loopback_callback(config_file: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "--config", str(config_file), "auth", "--listen"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    redirect = approve(process.stdout.readline().strip())
    wait_until(
        lambda: "Waiting for the browser" in process.stderr.readline(),
        timeout=10,
        what="the listener",
    )  # type: ignore[union-attr]
    with urllib.request.urlopen(redirect, timeout=10) as page:  # the browser lands on the Pi
        assert b"close this tab" in page.read()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Logged in to Spotify as" in err


def test_auth_with_redirect_file_finishes_a_pending_login(config_file: Path) -> None:
    """The redirect (code and state) comes from standard input or a file, never argv, where
    every process on the Pi can read it in /proc/*/cmdline."""
    first = subprocess.run(
        [*CLI, "--config", str(config_file), "auth"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert first.returncode == 1 and "--redirect-file -" in first.stderr
    redirect = approve(first.stdout.strip())
    second = cli(config_file, "auth", "--redirect-file", "-", stdin=redirect + "\n")
    assert second.returncode == 0, second.stderr
    assert "Logged in" in second.stderr


def test_auth_redirect_url_on_the_command_line_is_refused_with_what_to_use(
    config_file: Path,
) -> None:
    result = cli(config_file, "auth", "--redirect-url", "http://127.0.0.1/?code=x&state=y")
    assert result.returncode != 0
    assert "--redirect-file" in result.stderr
    assert not (config_file.parent / "state" / "spotify_tokens.json").exists()


def test_auth_with_redirect_file_reads_the_file(config_file: Path) -> None:
    first = cli(config_file, "auth", stdin="")
    redirect = approve(first.stdout.strip())
    path = config_file.parent / "redirect.txt"
    path.write_text(redirect + "\n")
    second = cli(config_file, "auth", "--redirect-file", str(path))
    assert second.returncode == 0, second.stderr
    assert "Logged in" in second.stderr


# ---- the running agent --------------------------------------------------------------------


def test_agent_publishes_online_health_and_a_token_get_token_decrypts(
    agent: AgentProcess,
    watcher: Watcher,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    assert watcher.wait_for(topics.availability).payload == b"online"
    assert watcher.wait_for(topics.health, healthy).json()["user"]
    retained = watcher.wait_for(topics.token)
    assert retained.expiry is not None and 3500 < retained.expiry <= 3600
    result = cli(agent.config, "get-token")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token == access_token(agent.config, retained)
    assert me_status(emulator, token) == 200
    as_json = json.loads(cli(agent.config, "get-token", "--json").stdout)
    assert as_json["kind"] == "user" and as_json["token_type"] == "Bearer"
    for path in agent.config.parent.rglob("*"):  # state files, key, config, agent log
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"the access token is in {path}"


def test_forced_refresh_with_mosquitto_pub_puts_a_new_token_on_the_broker(
    agent: AgentProcess,
    watcher: Watcher,
    base_topic: str,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    first = watcher.wait_for(topics.token)
    watcher.wait_for(topics.health, healthy)
    before = emulator.calls("refresh_token")
    sent = time.monotonic()
    mosquitto_pub(broker, topics.request("refresh"))
    old = access_token(agent.config, first)
    new = watcher.wait_for(topics.token, lambda m: access_token(agent.config, m) != old, after=sent)
    assert new.expiry is not None and new.expiry > 3500
    assert emulator.calls("refresh_token") == before + 1


def test_a_burst_of_refresh_requests_costs_one_spotify_call(
    agent: AgentProcess,
    watcher: Watcher,
    base_topic: str,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    before = emulator.calls("refresh_token")
    lines = "\n".join(json.dumps({"transaction": i}) for i in range(200)) + "\n"
    mosquitto_pub(broker, topics.request("refresh"), "-q", "1", "-l", stdin=lines)

    def answered() -> bool:
        return len(watcher.on(topics.response("refresh"))) >= 200

    wait_until(answered, timeout=20, what="200 responses")
    assert emulator.calls("refresh_token") - before == 1
    transactions = {m.json()["transaction"] for m in watcher.on(topics.response("refresh"))}
    assert transactions == set(range(200))


def test_refresh_command_waits_for_the_agents_answer(
    agent: AgentProcess, watcher: Watcher, base_topic: str
) -> None:
    watcher.wait_for(Topics(base_topic).health, healthy)
    result = cli(agent.config, "refresh")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refreshed;")
    again = cli(agent.config, "refresh")
    assert again.returncode == 0
    assert again.stdout.startswith("not needed (rate_limited; the next refresh is allowed ")


@pytest.mark.parametrize("token_lifetime", [3.0], ids=["3s-tokens"])
def test_pkce_rotation_survives_kill_9_without_a_new_login(
    logged_in: Path,
    watcher: Watcher,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    agent = AgentProcess(logged_in).start()
    try:
        wait_until(lambda: emulator.calls("refresh_token") >= 3, timeout=20, what="rotations")
        # Kill right after a rotation landed, not during one: a refresh token that Spotify
        # rotated while the agent was dying is gone for good, whatever the agent does.
        landed = len(watcher.on(topics.token))
        wait_until(lambda: len(watcher.on(topics.token)) > landed, timeout=10, what="a rotation")
        agent.kill9()
        watcher.wait_for(topics.availability, lambda m: m.payload == b"offline")  # Last Will
        killed_at = emulator.calls("refresh_token")
        restarted = time.monotonic()
        agent = AgentProcess(logged_in).start()
        wait_until(
            lambda: emulator.calls("refresh_token") >= killed_at + 2,
            timeout=20,
            what="refreshes after the restart",
        )
        ok = watcher.wait_for(topics.health, healthy, after=restarted)
        assert ok.json()["consecutive_failures"] == 0
        latest = watcher.on(topics.health)[-1].json()
        assert latest["state"] == "ok", latest
        assert "invalid_grant" not in agent.output()
    finally:
        agent.stop()


def test_broker_restart_brings_the_retained_state_back(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str
) -> None:
    topics = Topics(base_topic)
    assert wait_until(lambda: retained(broker, topics.token), timeout=10, what="a token")
    broker.restart()  # no persistence: the broker forgets every retained message
    assert wait_until(lambda: retained(broker, topics.token), timeout=20, what="the token back")
    assert retained(broker, topics.availability) == b"online"
    health = retained(broker, topics.health)
    assert health is not None and json.loads(health)["state"] == "ok"


def test_sigterm_publishes_offline_and_exits_cleanly(
    agent: AgentProcess, watcher: Watcher, base_topic: str, broker: PrivateMosquitto
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    assert agent.signal(signal.SIGTERM) == 0
    with Watcher(broker.host, broker.port, topics.availability) as fresh:
        assert fresh.wait_for(topics.availability).payload == b"offline"
    assert "Traceback" not in agent.output()


def test_agent_starts_while_the_broker_is_down_and_connects_later(
    logged_in: Path, broker: PrivateMosquitto, base_topic: str
) -> None:
    broker.stop()
    agent = AgentProcess(logged_in).start()
    try:
        wait_until(lambda: "starting" in agent.output(), timeout=10, what="the agent to start")
        broker.start()
        token = Topics(base_topic).token
        assert wait_until(lambda: retained(broker, token), timeout=40, what="a retained token")
    finally:
        agent.stop()


def test_check_and_status_report_the_agent(
    agent: AgentProcess, watcher: Watcher, base_topic: str
) -> None:
    watcher.wait_for(Topics(base_topic).health, healthy)
    check = cli(agent.config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("OK:")
    status = json.loads(cli(agent.config, "status", "--json").stdout)
    assert status["online"] is True and status["health"]["state"] == "ok"
    table = cli(agent.config, "status").stdout
    assert "state" in table and "token expires" in table
    agent.signal(signal.SIGTERM)
    stopped = cli(agent.config, "check", "--timeout", "2")
    assert stopped.returncode == 2, stopped.stdout
    assert "offline" in stopped.stdout
