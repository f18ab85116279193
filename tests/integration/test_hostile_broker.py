"""Issue 11, the agent's side, on a Mosquitto started from the shipped deploy/mosquitto/ files:
what the player and Home Assistant accounts can make the agent do. Run with -s for figures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mqtt_tokend.adapters.store import STATUS_FILE, read_status
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.deploy.conftest import Broker
from tests.integration.conftest import AgentProcess, approve, login
from tests.integration.hostile import (
    BASE,
    MARKS,
    MIN_REFRESH_INTERVAL,
    OBSERVER,
    Client,
    agent_config,
    connected,
    health_of,
    rss_kib,
    settled,
    shipped_in_tmp,
    start_agent,
    wait_for_state,
)
from tests.integration.watch import wait_until

pytestmark = MARKS

BURST = 10_000
SPOTIFY = ("token", "me", "devices")


@pytest.fixture
def shipped() -> Iterator[Broker]:
    with shipped_in_tmp() as broker:
        yield broker


@pytest.fixture
def emulator() -> Iterator[SpotifyEmulator]:
    with SpotifyEmulator() as emu:
        yield emu


@pytest.fixture
def clients(shipped: Broker) -> Iterator[dict[str, Client]]:
    """Connected clients of the observer, the player and Home Assistant."""
    with connected(shipped, f"{BASE}/#", "homeassistant/#") as made:
        yield made


def run_agent(config: Path) -> Iterator[AgentProcess]:
    agent = start_agent(config)
    yield agent
    agent.stop()


@pytest.fixture
def logged_out(
    tmp_path: Path, shipped: Broker, emulator: SpotifyEmulator
) -> Iterator[AgentProcess]:
    yield from run_agent(agent_config(tmp_path, shipped, emulator))


@pytest.fixture
def logged_in(tmp_path: Path, shipped: Broker, emulator: SpotifyEmulator) -> Iterator[AgentProcess]:
    config = agent_config(tmp_path, shipped, emulator)
    assert login(config).returncode == 0
    yield from run_agent(config)


def spotify_calls(emulator: SpotifyEmulator) -> int:
    return sum(emulator.calls(name) for name in SPOTIFY)


def outside_response(topic: str) -> bool:
    return not topic.startswith(f"{BASE}/response/")


def published_by_agent(topic: str) -> bool:
    """What the agent publishes besides replies (the observer also sees the requests)."""
    return (
        outside_response(topic)
        and not topic.startswith(f"{BASE}/request/")
        and (topic != "homeassistant/status")
    )


# ---- finding 1: the player logs the agent in with its own code ---------------------------


def test_the_players_code_smuggled_through_a_reply_does_not_log_the_agent_in(
    logged_out: AgentProcess, clients: dict[str, Client], emulator: SpotifyEmulator
) -> None:
    observer, player = clients[OBSERVER], clients["lofi-player"]
    wait_for_state(observer, "auth_required")
    observer.wait(lambda: any(observer.on(f"{BASE}/login")), "the offered login")
    url = observer.on(f"{BASE}/login")[-1].decode()
    state = parse_qs(urlsplit(url).query)["state"][0]

    # What the player sees: health says a login is pending and where, never the URL or state.
    player.subscribe(f"{BASE}/login", f"{BASE}/health")
    record = player.last_json(f"{BASE}/health")
    assert record["login_pending"] is True and record["login_topic"] == f"{BASE}/login"
    assert state not in json.dumps(record) and "auth_url" not in record
    assert player.on(f"{BASE}/login") == []  # retained, sent before health if allowed
    state_dir = logged_out.config.parent / "state"
    status_file = state_dir / STATUS_FILE
    # The file is written beside the retained health, not before it: wait for the same record.
    wait_until(
        lambda: (read_status(state_dir) or {}).get("login_pending"),
        timeout=30,
        what="the status file to say a login is pending",
    )
    assert state not in status_file.read_text()
    assert status_file.stat().st_mode & 0o777 == 0o640
    assert url not in logged_out.output()

    # Worst case: the player has the URL anyway, approves it, and smuggles its code.
    code = parse_qs(urlsplit(approve(url)).query)["code"][0]
    before = emulator.calls("token")
    body = json.dumps({"transaction": f"&code={code}&state={state}&"})
    player.send(
        f"{BASE}/request/refresh", body, response_topic=f"{BASE}/request/auth"
    ).wait_for_publish(10)
    settled(clients["homeassistant"], observer)

    assert observer.on(f"{BASE}/request/auth") == []  # the agent never wrote there
    (reply,) = observer.on(f"{BASE}/response/refresh")
    assert "Response Topic" in json.loads(reply)["error"]
    assert emulator.calls("token") == before
    assert health_of(observer)["state"] == "auth_required"
    assert "logged in over MQTT" not in logged_out.output()
    print(f"\nreplies outside {BASE}/response/: 0 (the reply went to response/refresh)")


# ---- finding 3: a Response Topic makes the agent publish anywhere it may write ------------

TARGETS = [
    f"{BASE}/token",
    f"{BASE}/availability",
    f"{BASE}/health",
    f"{BASE}/request/auth",
    f"{BASE}/request/check",
    "homeassistant/sensor/evil/config",
]


def test_a_foreign_response_topic_gets_no_reply_there_and_no_work(
    logged_in: AgentProcess, clients: dict[str, Client], emulator: SpotifyEmulator
) -> None:
    observer, player = clients[OBSERVER], clients["lofi-player"]
    wait_for_state(observer, "ok")
    settled(clients["homeassistant"], observer)
    before = spotify_calls(emulator)
    for i, target in enumerate(TARGETS * 100):
        body = json.dumps({"transaction": f"evil-{i}"})
        last = player.send(f"{BASE}/request/refresh", body, response_topic=target)
    last.wait_for_publish(30)
    settled(clients["homeassistant"], observer)
    with observer._cond:
        marked = [(t, p) for t, p in observer.messages if b"evil-" in p]
    outside = [t for t, p in marked if outside_response(t) and not t.endswith("/request/refresh")]
    spent = spotify_calls(emulator) - before
    print(
        f"\n{len(TARGETS) * 100} requests with a foreign Response Topic: {len(outside)} replies "
        f"outside {BASE}/response/, {spent} Spotify calls"
    )
    assert outside == []
    assert len(observer.on(f"{BASE}/response/refresh")) == len(TARGETS) * 100
    assert spent == 0  # refused, so not acted on
    assert logged_in.output().count("Response Topic is not under") == 1  # once a minute


# ---- finding 4: every verb is single flight and rate limited ------------------------------


@pytest.mark.parametrize("verb", ["refresh", "check", "status", "auth"])
def test_a_burst_of_ten_thousand_requests_costs_at_most_two_spotify_calls(
    verb: str,
    logged_in: AgentProcess,
    clients: dict[str, Client],
    emulator: SpotifyEmulator,
) -> None:
    observer, sender = clients[OBSERVER], clients["homeassistant"]
    wait_for_state(observer, "ok")
    settled(sender, observer)
    calls, published = spotify_calls(emulator), observer.count(published_by_agent)
    payload = b"http://127.0.0.1:8888/callback?code=c&state=guess" if verb == "auth" else b""
    started = time.monotonic()
    for _ in range(BURST):
        last = sender.send(f"{BASE}/request/{verb}", payload)
    last.wait_for_publish(60)
    settled(sender, observer, timeout=300)
    elapsed = time.monotonic() - started
    answered = len(observer.on(f"{BASE}/response/{verb}"))
    spent = spotify_calls(emulator) - calls
    other = observer.count(published_by_agent) - published
    print(
        f"\n{verb}: {BURST} sent, {answered} answered, {spent} Spotify calls, "
        f"{other} publishes outside response/ in {elapsed:.0f} s"
    )
    assert answered > 0
    # Two calls for the burst; a slow machine that takes longer than the agent's
    # min_refresh_interval to answer it may make one more call per interval, no more.
    assert spent <= 2 + int(elapsed // MIN_REFRESH_INTERVAL), (spent, elapsed)
    assert other <= 6


def test_a_thousand_home_assistant_births_publish_discovery_once(
    logged_in: AgentProcess, clients: dict[str, Client]
) -> None:
    observer, ha = clients[OBSERVER], clients["homeassistant"]
    wait_for_state(observer, "ok")
    settled(ha, observer)

    def discovery(topic: str) -> bool:
        return topic.startswith("homeassistant/") and topic.endswith("/config")

    entities = len({t for t, _p in observer.messages if discovery(t)})
    before, discovered = len(observer.messages), observer.count(discovery)
    for _ in range(1000):
        last = ha.send("homeassistant/status", "online")
    last.wait_for_publish(30)
    settled(ha, observer)
    status_replies = len(observer.on(f"{BASE}/response/status"))
    with observer._cond:
        published = sum(1 for t, _p in observer.messages[before:] if t != "homeassistant/status")
    print(
        f"\n1000 births: {observer.count(discovery) - discovered} discovery publishes "
        f"({entities} entities), {published} agent publishes in all (with {status_replies} "
        "status replies)"
    )
    assert observer.count(discovery) - discovered == entities


# ---- finding 2: one large request and the agent's memory ---------------------------------


@pytest.mark.parametrize("protocol", [5, 3])
def test_a_256_mib_request_does_not_grow_the_agent(
    protocol: int,
    tmp_path: Path,
    shipped: Broker,
    emulator: SpotifyEmulator,
    clients: dict[str, Client],
) -> None:
    config = agent_config(tmp_path, shipped, emulator, protocol=protocol)
    assert login(config).returncode == 0
    agent = start_agent(config)
    try:
        observer, player = clients[OBSERVER], clients["lofi-player"]
        wait_for_state(observer, "ok")
        settled(clients["homeassistant"], observer)
        assert agent.process is not None
        pid = agent.process.pid
        rss_before, peak_before = rss_kib(pid)
        huge = b"x" * ((256 << 20) - 1024)  # 256 MiB, less room for the header: MQTT's largest
        info = player.send(f"{BASE}/request/refresh", huge)
        # Taken, or refused with a disconnect where the broker sets max_packet_size.
        wait_until(
            lambda: info.is_published() or not player.client.is_connected(),
            timeout=120,
            what="the broker to take or refuse the large request",
        )
        settled(clients["homeassistant"], observer)
        rss_after, peak_after = rss_kib(pid)
    finally:
        agent.stop()
    print(
        f"\nMQTT {protocol}: agent RSS {rss_before // 1024} MiB -> {rss_after // 1024} MiB, "
        f"peak {peak_before // 1024} MiB -> {peak_after // 1024} MiB"
    )
    if protocol == 5:  # the broker never delivers it: the agent announced its Maximum Packet Size
        assert peak_after - peak_before < 16 * 1024
    elif info.is_published():  # 3.1.1 cannot say so: paho reads it, the agent drops it
        assert "dropped 1 message(s) over" in agent.output()
    assert rss_after - rss_before < 64 * 1024
