"""Recovery scenarios over real HTTP with the emulator's faults and a real broker.

Each test notes how long the agent took to notice, for the closing note (`-s` shows it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import (
    SpotifyEmulator,
)
from tests.integration.conftest import AgentProcess, approve, cli, login
from tests.integration.helpers import make_confidential, mosquitto_pub, report, state_is
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def token_lifetime() -> float:
    """Short tokens: a refresh every two seconds (the lead is capped at half the life)."""
    return 4.0


def force_refresh(broker: PrivateMosquitto, topics: Topics) -> None:
    mosquitto_pub(broker, topics.request("refresh"))


@pytest.fixture
def running(logged_in: Path) -> Iterator[AgentProcess]:
    agent = AgentProcess(logged_in).start()
    yield agent
    agent.stop()


def test_5xx_dropped_connections_and_garbage_then_recovery(
    running: AgentProcess, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.inject("status", status=503, count=2)
    emulator.inject("drop", count=1)
    emulator.inject("garbage", count=1)
    start = time.monotonic()
    retrying = watcher.wait_for(topics.health, state_is("retrying", "error"), after=start)
    report("5xx to retrying", retrying.at - start)
    ok = watcher.wait_for(topics.health, state_is("ok"), after=retrying.at, timeout=40)
    assert ok.json()["consecutive_failures"] == 0
    assert emulator.calls("refresh_token") >= 5
    report("faults cleared to ok", ok.at - retrying.at)


def test_429_retry_after_is_honoured(
    running: AgentProcess, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    before = emulator.calls("refresh_token")
    emulator.inject("rate_limit", retry_after=5, count=1)
    limited = wait_until(
        lambda: emulator.calls("refresh_token") > before and time.monotonic(),
        timeout=10,
        what="the 429",
    )
    wait_until(lambda: emulator.calls("refresh_token") > before + 1, timeout=20, what="the retry")
    waited = time.monotonic() - limited
    assert waited >= 4.9, f"retried after {waited:.2f} s despite Retry-After: 5"
    watcher.wait_for(topics.health, state_is("ok"), after=time.monotonic() - 0.5, timeout=10)
    report("429 retry waited", waited)


def test_revocation_leads_to_auth_required_with_notice_and_alert_then_reauth_recovers(
    running: AgentProcess,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
    logged_in: Path,
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.revoke_all()
    start = time.monotonic()
    force_refresh(broker, topics)
    needed = watcher.wait_for(topics.health, state_is("auth_required"), after=start)
    report("revocation to auth_required", needed.at - start)
    record = needed.json()
    assert "mqtt-tokend" in record["instructions"]
    assert record["login_pending"] is True and "auth_url" not in record
    offered = watcher.wait_for(topics.login, lambda m: bool(m.payload), after=start)
    assert offered.payload.decode().startswith(emulator.url)
    alert = watcher.wait_for(topics.alert, after=start).json()
    assert alert["event"] == "auth_required" and alert["instructions"]
    notice = logged_in.parent / "state" / "auth_failure_notice.txt"
    assert "auth" in notice.read_text()
    calls = emulator.calls("refresh_token")
    # a person logs in again while the agent runs
    relogin = time.monotonic()
    assert login(logged_in).returncode == 0
    ok = watcher.wait_for(topics.health, state_is("ok"), after=relogin, timeout=15)
    report("re-auth to ok", ok.at - relogin)
    assert ok.json()["instructions"] is None
    recovered = watcher.wait_for(topics.alert, lambda m: m.json()["event"] == "recovered")
    assert recovered.json()["message"]
    assert not notice.exists()
    assert emulator.calls("refresh_token") - calls <= 1  # no refusal loop


def test_login_repaired_by_pasting_the_redirect_over_mqtt(
    running: AgentProcess,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.revoke_all()
    force_refresh(broker, topics)
    watcher.wait_for(topics.health, state_is("auth_required"))
    url = watcher.wait_for(topics.login, lambda m: bool(m.payload)).payload.decode()
    redirect = approve(url)  # the owner's phone approves and lands on the redirect
    mosquitto_pub(broker, topics.request("auth"), "-m", redirect)
    answer = watcher.wait_for(topics.response("auth")).json()
    assert answer["status"] == "ok", answer
    watcher.wait_for(topics.health, state_is("ok"), after=time.monotonic() - 1, timeout=10)


@pytest.fixture
def confidential(config_file: Path) -> Path:
    return make_confidential(config_file)


def test_app_token_is_served_while_degraded(
    confidential: Path,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
) -> None:
    assert login(confidential).returncode == 0
    agent = AgentProcess(confidential).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        emulator.revoke_all()
        start = time.monotonic()
        force_refresh(broker, topics)
        degraded = watcher.wait_for(topics.health, state_is("degraded"), after=start, timeout=15)
        report("revocation to degraded", degraded.at - start)
        app = watcher.wait_for(topics.token_app, lambda m: bool(m.payload))
        key = TokenCipher.from_file(confidential.parent / "fernet.key")
        assert key.decrypt_json(app.payload)["kind"] == "app"
        result = cli(confidential, "get-token", "--app", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["kind"] == "app"
    finally:
        agent.stop()


def test_refresh_token_max_age_ends_the_login(
    running: AgentProcess,
    watcher: Watcher,
    topics: Topics,
    emulator: SpotifyEmulator,
) -> None:
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.refresh_token_max_age = 0.5  # six months, in the emulator's accelerated time
    start = time.monotonic()
    needed = watcher.wait_for(topics.health, state_is("auth_required"), after=start, timeout=15)
    report("refresh-token maximum age to auth_required", needed.at - start)
    assert "revoked" in needed.json()["message"].lower()


def test_timeouts_then_recovery_with_pkce_rotation(
    running: AgentProcess, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    # The emulator drops a request whose client gave up before it was carried out (stuck in
    # the network), so no rotated refresh token is lost to the timeout.
    watcher.wait_for(topics.health, state_is("ok"))
    emulator.inject("delay", delay=4.0, count=2)  # longer than request_timeout = 3
    start = time.monotonic()
    retrying = watcher.wait_for(
        topics.health, state_is("retrying", "error"), after=start, timeout=15
    )
    report("PKCE timeout to retrying", retrying.at - start)
    ok = watcher.wait_for(topics.health, state_is("ok"), after=retrying.at, timeout=30)
    report("PKCE timeouts cleared to ok", ok.at - retrying.at)


def test_timeouts_then_recovery_with_a_client_secret(
    confidential: Path, watcher: Watcher, topics: Topics, emulator: SpotifyEmulator
) -> None:
    # A refresh Spotify carried out but whose answer was lost costs nothing with a client
    # secret (the refresh token is kept); with PKCE rotation it would kill the session.
    assert login(confidential).returncode == 0
    agent = AgentProcess(confidential).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        emulator.inject("delay", delay=4.0, count=2)  # longer than request_timeout = 3
        start = time.monotonic()
        retrying = watcher.wait_for(
            topics.health, state_is("retrying", "error"), after=start, timeout=15
        )
        report("timeout to retrying", retrying.at - start)
        ok = watcher.wait_for(topics.health, state_is("ok"), after=retrying.at, timeout=30)
        report("timeouts cleared to ok", ok.at - retrying.at)
    finally:
        agent.stop()
