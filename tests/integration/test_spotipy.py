"""spotipy in one line: `spotipy.Spotify(auth_manager=TokendAuthManager(...))` against a real
broker, a real agent and the emulator; a 401 heals without the caller seeing it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.dev.emulator.webapi import DEMO_DEVICES, DEMO_TRACKS
from mqtt_tokend.webapi import TokendAuthManager
from tests.integration.conftest import AgentProcess

spotipy = pytest.importorskip("spotipy", reason="pip install mqtt-tokend[spotipy]")

pytestmark = pytest.mark.integration


@pytest.fixture
def manager(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str
) -> Iterator[TokendAuthManager]:
    auth = TokendAuthManager(
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=agent.config.parent / "fernet.key",
    )
    yield auth
    auth.stop()


@pytest.fixture
def sp(manager: TokendAuthManager, emulator: SpotifyEmulator) -> Any:
    client = spotipy.Spotify(auth_manager=manager)  # the one line
    client.prefix = f"{emulator.url}/v1/"  # the emulator instead of api.spotify.com
    return client


@pytest.mark.parametrize("healing", ["expired", "refused-by-spotify"])
def test_a_401_heals_without_the_caller_seeing_it(
    sp: Any, manager: TokendAuthManager, emulator: SpotifyEmulator, healing: str
) -> None:
    assert sp.current_playback()["device"]["name"] == DEMO_DEVICES[0]["name"]
    emulator.reset_stats()
    if healing == "expired":
        emulator.expire_access_tokens()  # the token spotipy holds now gets a real 401
    else:
        emulator.inject("status", endpoint="player", status=401)
    assert sp.current_playback()["device"]["name"] == DEMO_DEVICES[0]["name"]
    assert manager.heals == 1
    assert emulator.calls("refresh_token") == 1
    assert emulator.calls("player") == 2


def test_spotipy_plays_pauses_and_lists_devices(sp: Any) -> None:
    names = [device["name"] for device in sp.devices()["devices"]]
    assert names == [device["name"] for device in DEMO_DEVICES]
    sp.start_playback(uris=[DEMO_TRACKS[2]["uri"]])
    playing = sp.current_playback()
    assert playing["is_playing"] and playing["item"]["uri"] == DEMO_TRACKS[2]["uri"]
    sp.pause_playback()
    assert sp.current_playback()["is_playing"] is False
    assert sp.search("tea", type="track")["tracks"]["items"][0]["name"] == "Tea at Four"


def test_a_401_that_a_new_token_cannot_heal_reaches_the_caller_once(
    sp: Any, manager: TokendAuthManager, emulator: SpotifyEmulator
) -> None:
    sp.current_playback()
    emulator.reset_stats()
    emulator.inject("status", endpoint="player", status=401, count=None)
    with pytest.raises(spotipy.SpotifyException) as raised:
        sp.current_playback()
    assert raised.value.http_status == 401
    assert emulator.calls("player") == 2  # one retry, never a loop
    emulator.clear_faults()


def test_the_token_info_has_no_refresh_token(manager: TokendAuthManager) -> None:
    info = manager.get_access_token(as_dict=True)
    assert isinstance(info, dict)
    assert set(info) == {"access_token", "token_type", "scope", "expires_at", "expires_in"}
    assert not manager.is_token_expired(info)
    cached = manager.get_cached_token()
    assert cached is not None and cached["access_token"] == info["access_token"]
