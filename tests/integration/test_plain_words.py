"""Re-login in plain words, said once: the real agent and `health-check` on a real Mosquitto.

When Spotify ends the login, health (and so Home Assistant), the notice file, the alert and
`status` say the same thing happened and give the same one line to do; `status` shows no
deadline beside it; and the owner hears of it once: the monitor does not repeat on
`<base>/alert` what the live agent said, though it still alerts when the agent is dead.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from mqtt_tokend.contract import notices
from mqtt_tokend.contract.notices import NOTICE_FILE
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wording import LOGIN_ENDED, auth_instructions
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.helpers import mosquitto_pub, state_is
from tests.integration.watch import Seen, Watcher

pytestmark = pytest.mark.integration


def events(watcher: Watcher, topics: Topics) -> list[str]:
    return [m.json()["event"] for m in watcher.on(topics.alert)]


def settled(watcher: Watcher, broker: PrivateMosquitto, topics: Topics) -> None:
    """Everything published before now has reached the watcher: the agent's answer to a
    `status` request comes after it (Mosquitto keeps the order it received messages in)."""
    transaction = uuid.uuid4().hex
    after = time.monotonic()
    mosquitto_pub(broker, topics.request("status"), "-m", f'{{"transaction": "{transaction}"}}')

    def answered(message: Seen) -> bool:
        return message.json().get("transaction") == transaction

    watcher.wait_for(topics.response("status"), answered, after=after)


def spotify_ends_the_login(
    emulator: SpotifyEmulator, broker: PrivateMosquitto, watcher: Watcher, topics: Topics
) -> Seen:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.revoke_all()
    start = time.monotonic()
    mosquitto_pub(broker, topics.request("refresh"))
    return watcher.wait_for(topics.health, state_is("auth_required"), after=start)


def test_one_line_everywhere_and_one_notification(
    agent: AgentProcess,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
) -> None:
    config = agent.config
    line = auth_instructions(str(config))
    needed = spotify_ends_the_login(emulator, broker, watcher, topics).json()

    # What happened, and the one line to do, in each place a person reads.
    assert (needed["message"], needed["instructions"]) == (LOGIN_ENDED, line)  # and HA's
    alert = watcher.wait_for(topics.alert, lambda m: m.json()["event"] == "auth_required").json()
    assert (alert["message"], alert["instructions"]) == (LOGIN_ENDED, line)
    notice = (config.parent / "state" / NOTICE_FILE).read_text()
    assert f"What happened: {LOGIN_ENDED}\n" in notice
    assert f"What to do:\n  {line}\n" in notice
    status = cli(config, "status")
    assert status.returncode == 0, status.stderr
    assert f"message         {LOGIN_ENDED}\n" in status.stdout
    assert f"TO DO: {line}\n" in status.stdout
    # No "log in again by <a date months away>" beside it: Spotify has ended the login.
    (row,) = [r for r in status.stdout.splitlines() if r.startswith("log in again by")]
    assert row.split(None, 4)[-1] == "now (see TO DO below)", row
    assert "Refresh token revoked" not in needed["message"] + alert["message"] + status.stdout

    # The monitor judges it critical, twice (its timer), and leaves the telling to the agent.
    for _ in range(2):
        check = cli(config, "health-check")
        assert check.returncode == 2, check.stdout + check.stderr
        assert check.stdout.startswith(f"CRITICAL: auth_required: {LOGIN_ENDED}")
    settled(watcher, broker, topics)
    assert events(watcher, topics) == [notices.AUTH_REQUIRED]
    log = (config.parent / "state" / "token_health.log").read_text()
    assert "[left to the agent: auth_required]" in log

    # The owner logs in again: the agent says so once, the monitor not again.
    relogin = time.monotonic()
    assert login(config).returncode == 0
    watcher.wait_for(topics.health, state_is("ok"), after=relogin, timeout=15)
    watcher.wait_for(topics.alert, lambda m: m.json()["event"] == notices.RECOVERED)
    check = cli(config, "health-check")
    assert check.returncode == 0, check.stdout + check.stderr
    settled(watcher, broker, topics)
    assert events(watcher, topics) == [notices.AUTH_REQUIRED, notices.RECOVERED]
    status = cli(config, "status")
    (row,) = [r for r in status.stdout.splitlines() if r.startswith("log in again by")]
    assert "days)" in row and "TO DO" not in status.stdout  # the new login's deadline


def test_the_monitor_alerts_what_the_agent_cannot_say_any_more(
    agent: AgentProcess,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
    logged_in: Path,
) -> None:
    spotify_ends_the_login(emulator, broker, watcher, topics)
    watcher.wait_for(topics.alert, lambda m: m.json()["event"] == "auth_required")
    agent.kill9()
    watcher.wait_for(topics.availability, lambda m: m.payload == b"offline")  # its Last Will
    check = cli(logged_in, "health-check")
    assert check.returncode == 2, check.stdout + check.stderr
    dead = watcher.wait_for(topics.alert, lambda m: m.json()["event"] == notices.AGENT_DEAD)
    assert "systemctl restart" in dead.json()["instructions"]
    assert events(watcher, topics) == [notices.AUTH_REQUIRED, notices.AGENT_DEAD]
