"""Crash consistency: kill -9 at each step of a refresh, restart, and the session goes on.

With PKCE rotation a refresh token exists only in Spotify's answer until it is written; a
crash between the two loses it by Spotify's design. Every later step must leave
the newest refresh token on disk. Since 2026-06-18 Spotify no longer rotates, and then even
a crash right after the answer loses nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess
from tests.integration.helpers import mosquitto_pub
from tests.integration.watch import Seen, Watcher

pytestmark = pytest.mark.integration

CRASH_AGENT = Path(__file__).resolve().parents[1] / "crash_agent.py"


def state_is(state: str):  # type: ignore[no-untyped-def]
    return lambda m: bool(m.payload) and m.json()["state"] == state


def crash_at(
    step: str, config: Path, broker: PrivateMosquitto, topics: Topics, watcher: Watcher
) -> int:
    """Run the agent until it is healthy, force a refresh, let it die at `step`."""
    process = subprocess.Popen(
        [sys.executable, str(CRASH_AGENT), step, "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        mosquitto_pub(broker, topics.request("refresh"))
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def goes_on(
    config: Path,
    broker: PrivateMosquitto,
    topics: Topics,
    watcher: Watcher,
    emulator: SpotifyEmulator,
) -> Seen:
    """Restart normally, force a refresh, and return the health record that follows."""
    restarted = time.monotonic()
    agent = AgentProcess(config).start()
    try:
        watcher.wait_for(topics.availability, lambda m: m.payload == b"online", after=restarted)
        before = emulator.calls("refresh_token")
        asked = time.monotonic()
        mosquitto_pub(broker, topics.request("refresh"))
        answer = watcher.wait_for(topics.response("refresh"), after=asked, timeout=15)
        assert emulator.calls("refresh_token") == before + 1
        return answer
    finally:
        agent.stop()


@pytest.mark.parametrize("step", ["tokens", "backup", "published"])
def test_a_crash_after_the_new_refresh_token_is_written_loses_nothing(
    step: str,
    logged_in: Path,
    broker: PrivateMosquitto,
    base_topic: str,
    watcher: Watcher,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    assert crash_at(step, logged_in, broker, topics, watcher) == -9
    answer = goes_on(logged_in, broker, topics, watcher, emulator)
    assert answer.json()["status"] == "ok", answer.json()
    assert answer.json()["data"]["state"] == "ok"


@pytest.mark.parametrize("rotation", [False, True], ids=["no-rotation", "pkce-rotation"])
def test_a_crash_right_after_spotify_answered(
    rotation: bool,
    logged_in: Path,
    broker: PrivateMosquitto,
    base_topic: str,
    watcher: Watcher,
    emulator: SpotifyEmulator,
) -> None:
    emulator.rotate_refresh_tokens = rotation
    topics = Topics(base_topic)
    assert crash_at("response", logged_in, broker, topics, watcher) == -9
    answer = goes_on(logged_in, broker, topics, watcher, emulator).json()
    if not rotation:
        assert answer["status"] == "ok" and answer["data"]["state"] == "ok"
    else:  # the rotated token died with the process: a person is asked, clearly
        assert answer["status"] == "error"
        assert answer["data"]["state"] == "auth_required"
        assert "mqtt-tokend" in answer["data"]["instructions"]
