"""The session keeper alone: no publisher exists, so whatever a snapshot says is on disk."""

from __future__ import annotations

from pathlib import Path

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.core.statemachine import Event
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.snapshot import Retained
from mqtt_tokend.daemon.token_files import TokenFiles
from tests.fakes import FakeClock, FakeSpotify


def keeper_on(
    tmp_path: Path, clock: FakeClock, spotify: FakeSpotify
) -> tuple[SessionKeeper, TokenStore]:
    settings = AgentConfig(state_dir=tmp_path / "state", key_file=tmp_path / "key")
    cipher = TokenCipher([generate_key()])
    store = TokenStore(settings.state_dir, cipher=cipher)
    now = clock.wall()
    store.save(Tokens("access-0", "refresh-0", now + 3000, "scope", now - 600, now - 86400))
    keeper = SessionKeeper(
        settings=settings,
        files=TokenFiles(store=store, key_file=settings.key_file),
        spotify=spotify,
        app=AppTokenKeeper(spotify=spotify, clock=clock, early=600, retry=300),
        devices=DeviceWatch(spotify=spotify, zeroconf_url=""),
        clock=clock,
    )
    return keeper, store


def test_a_refresh_is_on_disk_when_the_keeper_returns_its_snapshot(
    tmp_path: Path, clock: FakeClock
) -> None:
    spotify = FakeSpotify()
    keeper, store = keeper_on(tmp_path, clock, spotify)
    started = keeper.start()
    assert started.state == State.OK
    assert [h.event for h in started.happenings] == [Event.LOADED]
    clock.advance(3000 - 600)
    snapshot = keeper.run_due()
    assert spotify.refresh_calls == ["refresh-0"]
    assert {Retained.USER_TOKEN, Retained.HEALTH} <= snapshot.changed
    assert snapshot.user_token is not None and snapshot.user_token.access_token == "access-1"
    on_disk = store.load()
    assert on_disk is not None and on_disk.refresh_token == "refresh-1"
    assert keeper.snapshot().happenings == ()  # handed over once, then forgotten
