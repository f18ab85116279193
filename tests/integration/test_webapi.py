"""`SpotifyClient` against a real broker, a real agent and the emulator over HTTP: 401, 429,
5xx, the app token while the login needs a person, and the typed errors."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.dev.emulator.webapi import DEMO_DEVICES, DEMO_TRACKS
from mqtt_tokend.webapi import (
    LoginNeeded,
    RateLimited,
    RequestRefused,
    RetryPolicy,
    SpotifyClient,
    SpotifyUnavailable,
    TokenRejected,
    TokenUnavailable,
    WebApiError,
)
from tests.integration.conftest import AgentProcess, login
from tests.integration.helpers import healthy, make_confidential, state_is
from tests.integration.watch import Watcher

pytestmark = pytest.mark.integration

POLICY = RetryPolicy(backoff_base=0.05, retry_after_cap=5.0, token_timeout=15.0)


@pytest.fixture
def running_agent(config_file: Path, watcher: Watcher, topics: Topics) -> Iterator[AgentProcess]:
    """A logged-in agent with a client secret, so it serves the app token too."""
    config = make_confidential(config_file)
    assert login(config).returncode == 0
    agent = AgentProcess(config).start()
    watcher.wait_for(topics.health, healthy, timeout=20)
    yield agent
    agent.stop()


def connect(
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
    config: Path,
    policy: RetryPolicy = POLICY,
) -> SpotifyClient:
    return SpotifyClient.connect(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=config.parent / "fernet.key",
        api_url=emulator.url,
        policy=policy,
    )


@pytest.fixture
def client(
    running_agent: AgentProcess,
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> Iterator[SpotifyClient]:
    with connect(broker, base_topic, emulator, running_agent.config) as spotify:
        spotify.playback()  # connected, holding a token
        emulator.reset_stats()
        yield spotify


def test_a_401_is_healed_with_one_refresh_and_one_retry(
    client: SpotifyClient, emulator: SpotifyEmulator
) -> None:
    emulator.expire_access_tokens()  # the token the client holds now answers 401
    state = client.playback()
    assert state is not None and state["device"]["name"] == DEMO_DEVICES[0]["name"]
    assert emulator.calls("refresh_token") == 1
    assert emulator.calls("player") == 2  # the 401 and the retry


def test_a_429_is_waited_out_and_shared_by_later_calls(
    client: SpotifyClient, emulator: SpotifyEmulator
) -> None:
    emulator.inject("rate_limit", endpoint="player", retry_after=1)
    started = time.monotonic()
    assert client.playback() is not None
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert emulator.calls("player") == 2

    emulator.inject("rate_limit", endpoint="search", retry_after=3600)
    with pytest.raises(RateLimited) as raised:
        client.search("tram")
    assert raised.value.retry_after == pytest.approx(3600, abs=5)
    assert "try again after that" in str(raised.value)
    started = time.monotonic()
    for _ in range(20):  # while the limit lasts, no call reaches Spotify: no hammering
        with pytest.raises(RateLimited):
            client.playback()
    assert time.monotonic() - started < 1.0
    assert emulator.calls("search") == 1 and emulator.calls("player") == 2


@pytest.mark.parametrize(
    ("kind", "status"),
    [("status", 500), ("status", 502), ("status", 503), ("status", 504), ("drop", 503)],
    ids=["500", "502", "503", "504", "dropped"],
)
def test_server_failures_are_retried_a_bounded_number_of_times(
    client: SpotifyClient, emulator: SpotifyEmulator, kind: str, status: int
) -> None:
    emulator.inject(kind, endpoint="player", status=status, count=2)
    assert client.playback() is not None
    assert emulator.calls("player") == 3
    emulator.reset_stats()
    emulator.inject(kind, endpoint="player", status=status, count=None)
    with pytest.raises(SpotifyUnavailable) as raised:
        client.playback()
    assert emulator.calls("player") == POLICY.server_retries + 1
    assert "try again in a minute" in str(raised.value)
    emulator.clear_faults()


def test_a_post_is_not_repeated_after_a_server_failure(
    client: SpotifyClient, emulator: SpotifyEmulator
) -> None:
    emulator.inject("status", endpoint="queue", status=503, count=None)
    with pytest.raises(SpotifyUnavailable):
        client.request("POST", "/v1/me/player/queue", params={"uri": DEMO_TRACKS[0]["uri"]})
    assert emulator.calls("queue") == 1  # it may have been carried out: never twice
    emulator.clear_faults()
    client.request("POST", "/v1/me/player/queue", params={"uri": DEMO_TRACKS[0]["uri"]})


# Every way a call can fail, and the error a program (and the person reading it) gets.
FAILURES: list[tuple[str, dict[str, Any], type[WebApiError], str]] = [
    ("bad-request", {"status": 400}, RequestRefused, "HTTP 400"),
    ("forbidden", {"status": 403}, RequestRefused, "scope"),
    ("not-found", {"status": 404}, RequestRefused, "does not exist"),
    ("refused-twice", {"status": 401, "count": None}, TokenRejected, "mqtt-tokend status"),
    ("long-rate-limit", {"kind": "rate_limit", "retry_after": 600}, RateLimited, "600 s"),
    ("server-down", {"status": 503, "count": None}, SpotifyUnavailable, "try again"),
]


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [row[1:] for row in FAILURES],
    ids=[row[0] for row in FAILURES],
)
def test_each_failure_is_a_typed_error_that_says_what_to_do(
    client: SpotifyClient,
    emulator: SpotifyEmulator,
    fault: dict[str, Any],
    error: type[WebApiError],
    words: str,
) -> None:
    emulator.inject(fault.pop("kind", "status"), endpoint="player", **fault)
    with pytest.raises(error) as raised:
        client.playback()
    assert words in str(raised.value)
    assert raised.value.path == "/v1/me/player"
    emulator.clear_faults()
    assert emulator.calls("refresh_token") == (1 if error is TokenRejected else 0)


def test_no_agent_is_token_unavailable(
    broker: PrivateMosquitto, base_topic: str, emulator: SpotifyEmulator, config_file: Path
) -> None:
    policy = RetryPolicy(token_timeout=1.0)
    with (
        connect(broker, base_topic, emulator, config_file, policy) as spotify,
        pytest.raises(TokenUnavailable, match="is the agent running"),
    ):
        spotify.playback()
    assert emulator.calls("player") == 0


def test_while_the_login_needs_a_person_the_catalog_uses_the_app_token(
    client: SpotifyClient,
    emulator: SpotifyEmulator,
    running_agent: AgentProcess,
    watcher: Watcher,
    topics: Topics,
) -> None:
    """Spotify ends the login: search goes on with the app token, the player names the fix,
    and the fix, run as printed, brings the player back."""
    emulator.revoke_all()
    with pytest.raises(LoginNeeded) as raised:
        client.playback()  # 401 -> rejected -> invalid_grant -> the agent asks for a person
    message = str(raised.value)
    found = client.search("tram")  # the catalog keeps working
    assert [t["name"] for t in found["tracks"]["items"]] == ["Late Tram"]
    with pytest.raises(LoginNeeded):
        client.devices()

    command = re.search(r"run: (mqtt-tokend --config \S+ auth)", message)
    assert command, message
    args = shlex.split(command.group(1))[1:]
    assert args == ["--config", str(running_agent.config), "auth"]
    started = time.monotonic()
    assert login(running_agent.config).returncode == 0  # `auth`, as a person would run it
    watcher.wait_for(topics.health, state_is("ok"), after=started, timeout=20)
    assert client.playback() is not None
