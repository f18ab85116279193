"""The agent and Home Assistant: discovery on connect and on birth, removal when disabled, and the
login URL on the login topic only (issue 5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config, HomeAssistantConfig
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.daemon.agent import BIRTH_COALESCE, Agent
from mqtt_tokend.daemon.inbox import Connected, Request
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, running_agent
from tests.unit.agent.helpers import TOPICS, revoke

# ---- Home Assistant (issue 5) -------------------------------------------------------------


def discovery(publisher: FakePublisher) -> list[str]:
    return [m.topic for m in publisher.messages if m.topic.startswith("homeassistant/")]


def test_discovery_is_published_on_connect_and_on_home_assistants_birth(
    agent: Agent, clock: FakeClock, publisher: FakePublisher
) -> None:
    first = discovery(publisher)
    assert first and all(t.endswith("/config") for t in first)
    assert all(m.retain and m.payload for m in publisher.messages if m.topic in first)
    payloads = [m.payload.decode() for m in publisher.messages if m.topic in first]
    assert not any(f'"{TOPICS.token}"' in p or TOPICS.token_app in p for p in payloads)
    publisher.messages.clear()
    birth = Message(topic="homeassistant/status", payload=b"online")
    agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)
    assert publisher.last(TOPICS.availability).payload == b"online"
    publisher.messages.clear()
    agent.step(Request(Message("homeassistant/status", b"offline"), clock.monotonic()))
    assert discovery(publisher) == []


@pytest.fixture
def ha_disabled(config: Config) -> Config:
    return replace(config, homeassistant=HomeAssistantConfig(enabled=False))


def test_with_discovery_disabled_the_device_is_removed_once(
    ha_disabled: Config,
    store: TokenStore,
    spotify: FakeSpotify,
    cipher: TokenCipher,
    publisher: FakePublisher,
    clock: FakeClock,
) -> None:
    agent = running_agent(
        config=ha_disabled,
        store=store,
        spotify=spotify,
        cipher=cipher,
        publisher=publisher,
        clock=clock,
    )
    removed = [m for m in publisher.messages if m.topic.startswith("homeassistant/")]
    assert removed and all(m.payload == b"" and m.retain for m in removed)
    publisher.messages.clear()
    agent.step(Connected())
    assert discovery(publisher) == []


def test_births_within_a_few_seconds_publish_discovery_once(
    agent: Agent, clock: FakeClock, publisher: FakePublisher
) -> None:
    first = discovery(publisher)
    publisher.messages.clear()
    birth = Message(topic="homeassistant/status", payload=b"online")
    for _ in range(1000):
        agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)  # once, not 1,000 times
    assert len(publisher.messages) < 2 * len(first)
    publisher.messages.clear()
    clock.advance(BIRTH_COALESCE)
    agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)


def test_the_login_url_is_on_the_login_topic_only(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    config: Config,
) -> None:
    revoke(agent, clock, spotify)
    url = publisher.last(TOPICS.login).payload.decode()
    state = url.split("state=")[1].split("&")[0]
    login_message = publisher.last(TOPICS.login)
    assert login_message.retain
    elsewhere = [m for m in publisher.messages if m is not login_message]
    assert not any(state.encode() in m.payload for m in elsewhere)
    status = config.agent.state_dir / "auto_token_status.json"
    assert state not in status.read_text()
    assert status.stat().st_mode & 0o777 == 0o640
    notice = config.agent.state_dir / "auth_failure_notice.txt"
    assert state not in notice.read_text()
