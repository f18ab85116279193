"""Issue 12 on the daemon's side: health that never lies, against a real agent subprocess, a
private Mosquitto and the emulator. Each test prints how long the agent took to say the truth
(`-s` shows the `[noticed]` lines):

    .venv/bin/python -m pytest -s tests/integration/test_health_daemon.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import generate_key
from mqtt_tokend.adapters.store import STATUS_FILE
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.helpers import (
    make_confidential,
    mosquitto_pub,
    report,
    set_in_config,
    state_is,
)
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


def monitor_says(config: Path, code: int, since: float, what: str) -> None:
    """Run health-check until it exits `code`; print the time from the fault (`since`)."""
    wait_until(
        lambda: cli(config, "health-check", timeout=60).returncode == code,
        timeout=60,
        what=f"health-check to exit {code}",
    )
    report(f"{what} to health-check exit {code}", time.monotonic() - since)


def status_file(config: Path) -> dict[str, object]:
    path = config.parent / "state" / STATUS_FILE
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@pytest.fixture
def running(logged_in: Path) -> Iterator[AgentProcess]:
    agent = AgentProcess(logged_in).start()
    yield agent
    if agent.process is not None and agent.process.poll() is None:
        os.kill(agent.process.pid, signal.SIGCONT)
    agent.stop()


# ---- item 1: a broker the agent cannot reach -----------------------------------------------


def test_lost_broker_is_an_error_with_the_fix_then_ok_again(
    running: AgentProcess, watcher: Watcher, topics: Topics, broker: PrivateMosquitto
) -> None:
    config = running.config
    watcher.wait_for(topics.health, state_is("ok"))
    broker.stop()
    start = time.monotonic()
    wait_until(
        lambda: "cannot reach the MQTT broker" in str(status_file(config).get("message")),
        timeout=30,
        what="the status file to say the broker cannot be reached",
    )
    report("broker lost to the status file", time.monotonic() - start)
    record = status_file(config)
    assert record["state"] == "error", record
    assert "mqtt.host, mqtt.port" in str(record["instructions"]), record
    wait_until(  # the log line may follow the status file
        lambda: any(
            "WARNING" in line and "cannot reach the MQTT broker" in line
            for line in running.output().splitlines()
        ),
        timeout=10,
        what="the agent's warning in its log",
    )
    status = cli(config, "status", timeout=60)
    assert "cannot reach the MQTT broker" in status.stdout, status
    check = cli(config, "check", timeout=60)
    assert check.returncode == 2 and "cannot reach the MQTT broker" in check.stdout, check
    start = time.monotonic()
    monitor = cli(config, "health-check", timeout=60)
    report("broker lost to health-check", time.monotonic() - start)
    assert monitor.returncode == 2 and "cannot reach the MQTT broker" in monitor.stdout, monitor
    broker.start()
    back = time.monotonic()
    watcher.wait_for(topics.health, state_is("ok"), after=back, timeout=40)
    wait_until(lambda: status_file(config).get("state") == "ok", timeout=10, what="ok on disk")
    report("broker back to ok", time.monotonic() - back)


# ---- item 2: invalid_client is published at once -------------------------------------------


@pytest.fixture
def confidential(config_file: Path) -> Path:
    return make_confidential(config_file)


def test_rejected_client_is_an_error_at_once_naming_the_keys(
    confidential: Path, watcher: Watcher, topics: Topics, broker: PrivateMosquitto
) -> None:
    assert login(confidential).returncode == 0
    set_in_config(confidential, "client_secret", '"' + "0" * 32 + '"')  # someone edits it
    agent = AgentProcess(confidential).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        start = time.monotonic()
        mosquitto_pub(broker, topics.request("refresh"))
        error = watcher.wait_for(topics.health, state_is("error"), after=start, timeout=10)
        report("invalid_client to error", error.at - start)
        monitor_says(confidential, 2, start, "invalid_client")
        instructions = str(error.json()["instructions"])
        assert "spotify.client_id" in instructions and "spotify.client_secret" in instructions
        assert str(confidential) in instructions
        monitor = cli(confidential, "health-check")
        assert monitor.returncode == 2, monitor
    finally:
        agent.stop()


# ---- item 4: `refresh` does not contradict `status` ------------------------------------------


def test_refresh_during_failures_says_retrying_not_fresh(
    running: AgentProcess, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.inject("status", endpoint="token", status=503, count=None)
    begun = time.monotonic()
    first = cli(running.config, "refresh")
    report("5xx to a refresh answer that says retrying", time.monotonic() - begun)
    second = cli(running.config, "refresh")
    status = cli(running.config, "status", "--json")
    for answer in (first, second):
        assert "not needed" not in answer.stdout, answer
        assert answer.returncode == 1 and "retrying" in answer.stdout, answer
        assert "next attempt at" in answer.stdout, answer
    health = json.loads(status.stdout)["health"]
    assert health["state"] == "retrying" and health["consecutive_failures"] >= 2, health


# ---- item 6: a full state directory never loses the login -------------------------------------


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\1" * 4096)
        except OSError:  # ENOSPC: the directory is full
            pass
    return filler


# 8 s tokens (a refresh every four seconds) for this test only: the others keep hour-long
# tokens, so a slow machine cannot let the token expire in the middle of what they watch.
@pytest.mark.parametrize("token_lifetime", [8.0], ids=["8s-tokens"])
def test_full_state_directory_makes_no_rotating_call_and_keeps_the_login(
    config_file: Path,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    state = config_file.parent / "state"
    state.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    agent = AgentProcess(config_file)
    try:
        assert login(config_file).returncode == 0
        agent.start()
        watcher.wait_for(topics.health, state_is("ok"))
        start = time.monotonic()
        filler = _fill(state)
        error = watcher.wait_for(
            topics.health,
            lambda m: bool(m.payload) and str(state) in m.json()["message"],
            after=start,
            timeout=20,
        )
        report("full state directory to error", error.at - start)
        monitor_says(config_file, 2, start, "full state directory")
        assert error.json()["state"] == "error"
        calls = emulator.calls("refresh_token")
        wait_until(  # the refresh due and a retry are refused by the disk
            lambda: agent.output().count("cannot write to the state directory") >= 2,
            timeout=60,
            what="two refused refreshes",
        )
        assert emulator.calls("refresh_token") == calls, "no call may rotate an unsaved token"
        served = [m for m in watcher.on(topics.token) if m.at <= error.at]
        assert served[-1].payload, "the valid token stays served (until it expires)"
        agent.kill9()
        filler.unlink()
        agent.start()
        # The stored token has expired by now: `ok` needs a refresh with the stored login.
        watcher.wait_for(topics.health, state_is("ok"), after=time.monotonic(), timeout=20)
        assert emulator.calls("refresh_token") > calls
        assert cli(config_file, "refresh").returncode == 0
    finally:
        agent.stop()
        subprocess.run(["umount", "-l", str(state)], check=False)


# ---- item 9: the right key put back ----------------------------------------------------------


def test_key_put_back_brings_a_running_agent_out_of_auth_required(
    logged_in: Path, watcher: Watcher, topics: Topics
) -> None:
    key = logged_in.parent / "fernet.key"
    right = key.read_bytes()
    key.write_bytes(generate_key() + b"\n")
    agent = AgentProcess(logged_in).start()
    try:
        watcher.wait_for(topics.health, state_is("auth_required"), timeout=20)
        start = time.monotonic()
        key.write_bytes(right)
        ok = watcher.wait_for(topics.health, state_is("ok"), after=start, timeout=15)
        report("key put back to ok", ok.at - start)
        monitor_says(logged_in, 0, start, "key put back")
    finally:
        agent.stop()


# ---- item 10: Retry-After in health, across a restart -----------------------------------------


def test_retry_after_is_shown_kept_across_a_restart_and_holds_a_rejected_refresh(
    logged_in: Path, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    agent = AgentProcess(logged_in).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        emulator.inject("rate_limit", endpoint="token", retry_after=600, count=1)
        begun = time.monotonic()
        start = time.time()
        first = cli(logged_in, "refresh")
        held = watcher.wait_for(
            topics.health, lambda m: bool(m.payload) and m.json()["retry_after_until"]
        )
        report("Retry-After to health", held.at - begun)
        monitor_says(logged_in, 1, begun, "Retry-After (retrying)")
        until = held.json()["retry_after_until"]
        assert start + 590 < until < time.time() + 610, (until, start)
        assert "Retry-After" in first.stdout or "retrying" in first.stdout, first
        calls = emulator.calls("refresh_token")
        again = cli(logged_in, "refresh")
        assert again.returncode == 1 and "Retry-After" in again.stdout, again
        agent.stop()
        agent.start()
        restarted = time.monotonic()
        kept = watcher.wait_for(
            topics.health,
            lambda m: bool(m.payload) and m.json()["retry_after_until"] is not None,
            after=restarted,
            timeout=20,
        )
        assert abs(kept.json()["retry_after_until"] - until) < 1
        assert cli(logged_in, "refresh").returncode == 1
        assert emulator.calls("refresh_token") == calls
    finally:
        agent.stop()


# ---- Home Assistant's Agent sensor: a stuck agent is offline -------------------------------------


def test_health_check_marks_a_stuck_agent_offline_and_the_agent_comes_back(
    config_file: Path, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    """Stuck while connected: the loop waits on Spotify, paho's thread keeps the connection
    (so no Last Will); the monitor says `offline`, the agent `online` once it is back."""
    set_in_config(config_file, "check_interval", "2")
    set_in_config(config_file, "request_timeout", "60")
    assert login(config_file).returncode == 0
    agent = AgentProcess(config_file).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        emulator.inject("delay", endpoint="any", delay=20, count=1)
        stuck = time.monotonic()
        wait_until(
            lambda: cli(config_file, "health-check").returncode == 2,
            timeout=30,
            what="health-check to judge the agent stuck",
        )
        offline = watcher.wait_for(
            topics.availability, lambda m: m.payload == b"offline", after=stuck
        )
        assert agent.process is not None and agent.process.poll() is None
        report("stuck agent to offline (check_interval 2 s)", offline.at - stuck)
        online = watcher.wait_for(
            topics.availability, lambda m: m.payload == b"online", after=offline.at, timeout=30
        )
        report("offline to online again (the delayed call ends at 20 s)", online.at - stuck)
    finally:
        agent.stop()


# ---- item 8: a wrong-shaped session file, with a real `run` -------------------------------------


def test_a_wrong_shaped_session_file_is_kept_aside_and_the_agent_runs(
    logged_in: Path, watcher: Watcher, topics: Topics
) -> None:
    session = logged_in.parent / "state" / "spotify_session.json"
    session.write_text('{"reauth_warned": 5}')
    agent = AgentProcess(logged_in).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"), timeout=20)
        assert agent.process is not None and agent.process.poll() is None
        aside = [p.name for p in session.parent.iterdir() if p.name != session.name]
        assert any(name.startswith("spotify_session.json") for name in aside), aside
    finally:
        agent.stop()
