"""The agent under test: a config in the test's directory, a stored login, a fake Spotify and a
recording publisher, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import AgentConfig, Config, HomeAssistantConfig, MqttConfig, SpotifyConfig
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.daemon.agent import Agent
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, running_agent
from tests.unit.agent.helpers import BASE


@pytest.fixture
def config(tmp_path: Path, state_dir: Path) -> Config:
    return Config(
        spotify=SpotifyConfig(client_id="client"),
        mqtt=MqttConfig(base_topic=BASE),
        agent=AgentConfig(
            state_dir=state_dir,
            key_file=tmp_path / "key",
            check_interval=300,
            refresh_early_seconds=600,
            max_backoff=300,
            min_refresh_interval=30,
        ),
        homeassistant=HomeAssistantConfig(),
    )


@pytest.fixture
def expires_in() -> float:
    """Seconds the stored token has left when the agent starts."""
    return 3000.0


@pytest.fixture
def tokens(clock: FakeClock, expires_in: float) -> Tokens:
    now = clock.wall()
    return Tokens(
        access_token="access-0",
        refresh_token="refresh-0",
        expires_at=now + expires_in,
        scope="user-read-playback-state",
        issued_at=now + expires_in - 3600,
        authorized_at=now - 86400,
    )


@pytest.fixture
def spotify() -> FakeSpotify:
    return FakeSpotify()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def agent(
    config: Config,
    saved: TokenStore,
    spotify: FakeSpotify,
    cipher: TokenCipher,
    publisher: FakePublisher,
    clock: FakeClock,
) -> Agent:
    """The agent, started on a store that holds `tokens` (the config's state_dir)."""
    return running_agent(
        config=config, store=saved, spotify=spotify, cipher=cipher, publisher=publisher, clock=clock
    )
