"""SpotifyClient as the player account on the shipped, locked-down Mosquitto: the broker names
each session after its user, so the client must read the user token, the app token and health
over one connection, and its rejected report must pass the ACL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.webapi import RetryPolicy, SpotifyClient
from tests.deploy.conftest import MOSQUITTO, Broker, free_port
from tests.integration.conftest import AgentProcess, login, write_agent_config
from tests.integration.watch import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

TAKEOVER = "already connected, closing old connection"


@pytest.fixture
def emulator() -> Iterator[SpotifyEmulator]:
    with SpotifyEmulator() as emu:
        yield emu


@pytest.fixture
def agent(broker: Broker, emulator: SpotifyEmulator, tmp_path: Path) -> Iterator[AgentProcess]:
    config = write_agent_config(
        tmp_path / "agent",
        emulator_url=emulator.url,
        mqtt={
            "port": broker.port,
            "username": "mqtt-tokend",
            "password": broker.passwords["mqtt-tokend"],
            "keepalive": 5,
        },
        redirect_uri=f"http://127.0.0.1:{free_port()}/callback",
    )
    assert login(config).returncode == 0
    process = AgentProcess(config).start()
    yield process
    process.stop()


def test_the_client_uses_one_session_of_the_player_account(
    broker: Broker, agent: AgentProcess, emulator: SpotifyEmulator
) -> None:
    with SpotifyClient.connect(
        port=broker.port,
        username="lofi-player",
        password=broker.passwords["lofi-player"],
        key_file=agent.config.parent / "fernet.key",
        api_url=emulator.url,
        policy=RetryPolicy(token_timeout=15.0),
    ) as spotify:
        assert spotify.playback() is not None
        refreshes = emulator.calls("refresh_token")
        emulator.expire_access_tokens()  # a forced 401: the report goes through the ACL
        assert spotify.playback() is not None
        wait_until(
            lambda: emulator.calls("refresh_token") == refreshes + 1, timeout=10, what="refresh"
        )
        assert spotify.devices()
    assert TAKEOVER not in broker.log, broker.log[-2000:]
