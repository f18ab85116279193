"""`TokenConsumer` against a private broker and a running agent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.errors import BrokerError, CryptoError
from tests.integration.conftest import AgentProcess, cli
from tests.integration.helpers import Changes, healthy, me_status
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def consumer(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str, changes: Changes
) -> Iterator[TokenConsumer]:
    """A consumer configured by hand (no config file), as a player script would."""
    with TokenConsumer(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=agent.config.parent / "fernet.key",
        on_change=changes,
    ) as consumer:
        yield consumer


@pytest.mark.parametrize("protocol", [3, 5], ids=["mqtt3.1.1", "mqtt5"])
def test_token_returns_a_token_spotify_accepts(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
    protocol: int,
) -> None:
    with TokenConsumer(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=agent.config.parent / "fernet.key",
        protocol=protocol,
    ) as consumer:
        token = consumer.token(timeout=10)
        assert me_status(emulator, token.access_token) == 200
        assert token.kind == "user" and token.expires_at > time.time() + 3000
        assert token.authorization == f"Bearer {token.access_token}"


def test_the_callback_fires_on_a_forced_refresh(
    consumer: TokenConsumer, changes: Changes, agent: AgentProcess
) -> None:
    first = consumer.token(timeout=10)
    wait_until(lambda: changes.access_tokens() == [first.access_token], timeout=5, what="a call")
    assert cli(agent.config, "refresh").returncode == 0
    wait_until(lambda: len(changes.access_tokens()) == 2, timeout=10, what="the new token")
    assert changes.access_tokens()[1] != first.access_token
    assert consumer.token(timeout=1).access_token == changes.access_tokens()[1]


def test_the_consumer_survives_a_broker_restart(
    consumer: TokenConsumer,
    changes: Changes,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
) -> None:
    first = consumer.token(timeout=10)
    broker.restart()  # every connection drops; the broker forgets the retained token
    wait_until(lambda: consumer.connected, timeout=20, what="the consumer to reconnect")
    refreshed = cli(agent.config, "refresh", "--timeout", "20")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    wait_until(lambda: len(changes.access_tokens()) >= 2, timeout=20, what="a token after it")
    token = consumer.token(timeout=5)
    assert token.access_token != first.access_token
    assert me_status(emulator, token.access_token) == 200


def test_a_rejected_token_costs_exactly_one_refresh(
    consumer: TokenConsumer,
    agent: AgentProcess,
    watcher: Watcher,
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    rejected = consumer.token(timeout=10)
    before = emulator.calls("refresh_token")
    sent = time.monotonic()
    with TokenConsumer(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=agent.config.parent / "fernet.key",
    ) as other:  # a second process got the same 401
        assert other.token(timeout=10).access_token == rejected.access_token
        assert consumer.report_rejected() is True
        assert other.report_rejected() is True
        assert consumer.report_rejected(rejected) is True  # the same consumer, again
        wait_until(
            lambda: len([m for m in watcher.on(topics.response("refresh")) if m.at >= sent]) == 3,
            timeout=10,
            what="three answers",
        )
        replacement = consumer.token(timeout=10)
        assert replacement.access_token != rejected.access_token
        assert other.token(timeout=10).access_token == replacement.access_token
    assert emulator.calls("refresh_token") == before + 1
    assert me_status(emulator, replacement.access_token) == 200


def test_the_app_consumer_waits_on_the_app_topic(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str
) -> None:
    with TokenConsumer(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=agent.config.parent / "fernet.key",
        app=True,
    ) as consumer:
        assert consumer.topic == Topics(base_topic).token_app
        with pytest.raises(BrokerError, match=r"no valid token on .*/token/app"):
            consumer.token(timeout=1)  # a PKCE client has no app token


def test_a_consumer_with_a_missing_key_file_says_how_to_make_one(
    broker: PrivateMosquitto, tmp_path: Path
) -> None:
    consumer = TokenConsumer(host=broker.host, port=broker.port, key_file=tmp_path / "none.key")
    with pytest.raises(CryptoError, match="mqtt-tokend keygen"):
        consumer.start()
