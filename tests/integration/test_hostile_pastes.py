"""Issue 17 on a Mosquitto started from the shipped deploy/mosquitto/ files: pasted logins
that guess the state, junk codes with the right state, stranger text, and rejected reports.
Run with -s for the figures."""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.contract.wire import token_sha256
from mqtt_tokend.core.gate import requested_refreshes_bound
from mqtt_tokend.daemon.answers import FAILED_LOGIN_REPORT_INTERVAL
from mqtt_tokend.daemon.remote_login import EXCHANGE_BURST, EXCHANGE_REFILL, REFUSED
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, approve, login
from tests.integration.hostile import (
    BASE,
    MARKS,
    OBSERVER,
    Client,
    agent_config,
    connected,
    settled,
    shipped_in_tmp,
    start_agent,
    wait_for_state,
)

pytestmark = MARKS

PASTES = 10_000
REPORTS = 1_000
STRANGER = "Call-555-0100-or-visit-evil.example"
ALPHABET = string.ascii_letters + string.digits + "-_"
REDIRECT = "http://127.0.0.1:8888/callback"
PEOPLE = (f"{BASE}/health", f"{BASE}/alert", f"{BASE}/login")  # what people and HA read


@dataclass(frozen=True)
class Rig:
    """The shipped broker's clients (observer, player, Home Assistant), the emulator, and an
    agent's config on that broker."""

    clients: dict[str, Client]
    emulator: SpotifyEmulator
    config: Path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with (
        shipped_in_tmp() as broker,
        SpotifyEmulator() as emulator,
        connected(broker, f"{BASE}/#") as clients,
    ):
        yield Rig(clients, emulator, agent_config(tmp_path, broker, emulator))


@contextmanager
def running(config: Path, *, logged_in: bool) -> Iterator[AgentProcess]:
    """The agent on the rig, after a headless login or with none (it then offers one)."""
    if logged_in:
        assert login(config).returncode == 0
    agent = start_agent(config)
    try:
        yield agent
    finally:
        agent.stop()


def chosen_pastes(state: str, count: int, rng: random.Random) -> list[str]:
    """What a guesser sends: every prefix of the state, every one-character change, longer
    states, the right state with junk codes, `error=` with stranger text (with the right
    state and without), other shapes, and random states to make up `count`."""
    pastes = [f"{REDIRECT}?code=AQBjunk{n}&state={state[:n]}" for n in range(len(state))]
    pastes += [f"code=AQBjunk&state={state[:n]}" for n in range(len(state))]
    for i in range(len(state)):
        pastes += [
            f"{REDIRECT}?code=AQBjunk&state={state[:i]}{c}{state[i + 1 :]}"
            for c in ALPHABET
            if c != state[i]
        ]
    pastes += [f"{REDIRECT}?code=AQBjunk&state={state}{c}" for c in ALPHABET]
    pastes += [
        f"{REDIRECT}?code=AQ{''.join(rng.choices(ALPHABET, k=150))}&state={state}"
        for _ in range(300)
    ]
    pastes += [f"{REDIRECT}?error={STRANGER}-{i}&state={state}" for i in range(50)]
    pastes += [f"{REDIRECT}?error=access_denied&state={state}" for _ in range(10)]
    pastes += [f"{REDIRECT}?error={STRANGER}&state={state[:n]}" for n in range(len(state))]
    pastes += [
        "",
        "AQBbareCodeOnly12345",
        f"https://accounts.spotify.com/authorize?state={state}",
        f"{REDIRECT}?code=a&state={state}&code=b&state={state}",
        "http://[::1?code=x&state=y",
        STRANGER,
        "x" * 5000,
    ]
    while len(pastes) < count:
        guess = "".join(rng.choices(ALPHABET, k=rng.choice((len(state), 8, 40))))
        pastes.append(f"{REDIRECT}?code=AQBjunk&state={guess}")
    rng.shuffle(pastes)
    return pastes[:count]


def offered(observer: Client) -> str:
    observer.wait(lambda: any(observer.on(f"{BASE}/login")), "the offered login")
    return observer.on(f"{BASE}/login")[-1].decode()


def flood(sender: Client, observer: Client, pastes: list[str], batch: int = 500) -> float:
    """Send every paste to request/auth, `batch` at a time (the broker queues at most 1,000
    for the agent), each batch once the last is answered; the seconds it took."""
    topic = f"{BASE}/response/auth"
    started = time.monotonic()
    for first in range(0, len(pastes), batch):
        chunk = pastes[first : first + batch]
        expected = observer.counts.get(topic, 0) + len(chunk)
        for paste in chunk:
            sender.send(f"{BASE}/request/auth", paste)
        observer.wait_count(topic, expected)
    return time.monotonic() - started


def people_read(observer: Client, since: int) -> list[tuple[str, bytes]]:
    with observer._cond:
        return [(t, p) for t, p in observer.messages[since:] if t in PEOPLE]


def test_chosen_pastes_get_one_refusal_and_the_owners_paste_still_logs_in(rig: Rig) -> None:
    with running(rig.config, logged_in=False) as agent:
        chosen_pastes_then_the_owner(agent, rig.clients, rig.emulator)


def chosen_pastes_then_the_owner(
    agent: AgentProcess, clients: dict[str, Client], emulator: SpotifyEmulator
) -> None:
    observer, ha = clients[OBSERVER], clients["homeassistant"]
    wait_for_state(observer, "auth_required")
    url = offered(observer)
    state = parse_qs(urlsplit(url).query)["state"][0]
    pastes = chosen_pastes(state, PASTES, random.Random(17))
    since, exchanges = len(observer.messages), emulator.calls("authorization_code")

    seconds = flood(ha, observer, pastes)

    replies = observer.on(f"{BASE}/response/auth")[-PASTES:]
    seen = people_read(observer, since)
    alerts = [json.loads(p) for t, p in seen if t == f"{BASE}/alert"]
    spent = emulator.calls("authorization_code") - exchanges
    print(
        f"\n{PASTES} chosen pastes in {seconds:.1f} s: {len(set(replies))} distinct replies, "
        f"{spent} code exchanges, {len(alerts)} alerts, "
        f"{sum(1 for t, _ in seen if t == f'{BASE}/health')} health records"
    )
    assert len(set(replies)) == 1 and json.loads(replies[0])["error"] == REFUSED
    assert spent <= EXCHANGE_BURST + seconds / EXCHANGE_REFILL + 1
    assert len(alerts) <= 1 + seconds / FAILED_LOGIN_REPORT_INTERVAL
    assert all(a["event"] == "auth_failed" and a["message"] == REFUSED for a in alerts)
    assert not [t for t, _ in seen if t == f"{BASE}/health"]  # refusals never rewrite it
    assert STRANGER not in agent.output()
    assert state not in agent.output() and url not in agent.output()

    # The owner opens the same link, approves, and their redirect is handed in. A refusal
    # while the exchange budget refills leaves the code unused: the owner pastes it again.
    assert offered(observer) == url  # the same link still stands
    owner = approve(url)
    tapped = time.monotonic()
    deadline = tapped + EXCHANGE_REFILL + 60
    while True:
        answered = observer.counts[f"{BASE}/response/auth"]
        ha.send(f"{BASE}/request/auth", owner)
        observer.wait_count(f"{BASE}/response/auth", answered + 1)
        if json.loads(observer.on(f"{BASE}/response/auth")[-1])["status"] == "ok":
            break
        assert time.monotonic() < deadline, "the owner's paste was never accepted"
        time.sleep(1.0)  # a person pasting again
    record = wait_for_state(observer, "ok")
    print(f"the owner's paste after the flood: ok in {time.monotonic() - tapped:.1f} s")
    assert STRANGER not in json.dumps(record)
    everything = people_read(observer, since)
    assert not [t for t, p in everything if STRANGER.encode() in p]


def test_with_no_login_pending_a_paste_gets_the_refusal_and_health_stays(rig: Rig) -> None:
    observer, ha = rig.clients[OBSERVER], rig.clients["homeassistant"]
    with running(rig.config, logged_in=True):
        record = wait_for_state(observer, "ok")
        settled(ha, observer)
        since, calls = len(observer.messages), rig.emulator.calls("token")
        pastes = chosen_pastes("x" * 22, 1_000, random.Random(4))
        seconds = flood(ha, observer, pastes)
        settled(ha, observer)
        seen = people_read(observer, since)
        last = json.loads(observer.on(f"{BASE}/health")[-1])
    replies = observer.on(f"{BASE}/response/auth")[-len(pastes) :]
    print(
        f"\n{len(pastes)} pastes with no login pending in {seconds:.1f} s: "
        f"{len(set(replies))} distinct replies, {len(seen)} health/alert/login messages"
    )
    assert len(set(replies)) == 1 and json.loads(replies[0])["error"] == REFUSED
    assert seen == []  # health untouched, no alert, no login offered
    assert rig.emulator.calls("token") == calls
    assert last["message"] == record["message"]


@pytest.mark.parametrize("logged_in", [False, True], ids=["login-pending", "logged-in"])
def test_no_stranger_text_reaches_health_or_alerts(logged_in: bool, rig: Rig) -> None:
    """Issue 17, finding 4: `?error=<text>&state=anything` was reported before the state was
    checked, and with no login pending any paste rewrote a healthy agent's health."""
    observer, ha = rig.clients[OBSERVER], rig.clients["homeassistant"]
    pastes = [
        f"{REDIRECT}?error={STRANGER}&state=anything",
        f"error={STRANGER}",
        f"{REDIRECT}?code={STRANGER}&state={STRANGER}",
        f"{REDIRECT}?error=access_denied&error_description={STRANGER}&state=x",
    ]
    with running(rig.config, logged_in=logged_in) as agent:
        wait_for_state(observer, "ok" if logged_in else "auth_required")
        settled(ha, observer)
        since = len(observer.messages)
        flood(ha, observer, pastes)
        settled(ha, observer)
        seen = people_read(observer, since)
    carrying = [t for t, p in seen if STRANGER.encode() in p]
    print(f"\n{len(seen)} health/alert messages, {len(carrying)} with stranger text")
    assert carrying == []
    assert STRANGER not in agent.output()
    alerts = [json.loads(p) for t, p in seen if t == f"{BASE}/alert"]
    assert [a["message"] for a in alerts if a["event"] == "auth_failed"] == (
        [] if logged_in else [REFUSED]
    )
    assert [t for t, _ in seen if t == f"{BASE}/health"] == []


def test_rejected_reports_of_each_fresh_token_stay_within_the_documented_bound(rig: Rig) -> None:
    """A player holding the key reports every token it sees as rejected, in batches."""
    with running(rig.config, logged_in=True):
        rejected_reports(
            rig.clients, rig.emulator, TokenCipher.from_file(rig.config.parent / "fernet.key")
        )


def rejected_reports(
    clients: dict[str, Client], emulator: SpotifyEmulator, cipher: TokenCipher
) -> None:
    observer, player = clients[OBSERVER], clients["lofi-player"]
    wait_for_state(observer, "ok")
    player.subscribe(f"{BASE}/token", f"{BASE}/response/refresh")

    def current() -> str:
        player.wait(lambda: any(player.on(f"{BASE}/token")), "a token")
        access: str = cipher.decrypt_json(player.on(f"{BASE}/token")[-1])["access_token"]
        return access

    replies = f"{BASE}/response/refresh"
    before, started = emulator.calls("refresh_token"), time.monotonic()
    batch = 10
    for first in range(0, REPORTS, batch):
        answered = player.counts.get(replies, 0)
        report = {"reason": "rejected", "token_sha256": token_sha256(current())}
        for i in range(first, first + batch):
            player.send(f"{BASE}/request/refresh", json.dumps(report | {"transaction": i}))
        player.wait_count(replies, answered + batch)
    seconds = time.monotonic() - started
    spent = emulator.calls("refresh_token") - before
    bound = requested_refreshes_bound(seconds, min_interval=30)
    print(
        f"\n{REPORTS} rejected reports of the current token in {seconds:.1f} s: {spent} "
        f"Spotify refreshes (documented bound {bound})"
    )
    assert 1 <= spent <= bound
    assert wait_for_state(observer, "ok")
