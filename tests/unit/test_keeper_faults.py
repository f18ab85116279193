"""The session keeper's faults (issue 12): a full disk, a rejected client, Retry-After kept
across a restart, and what the gate and a refusal say."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.wire import NotRefreshed
from mqtt_tokend.core.gate import RefreshGate
from mqtt_tokend.core.timing import RETRY_AFTER_CAP
from mqtt_tokend.daemon import token_files
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.refusal import not_refreshed
from mqtt_tokend.daemon.snapshot import Retained
from mqtt_tokend.errors import ClientRejected, TransientError
from tests.fakes import FakeClock, FakeSpotify
from tests.unit.test_keeper import keeper_on


def on_a_disk(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, *, full: list[bool]
) -> tuple[SessionKeeper, TokenStore, FakeSpotify]:
    """A started keeper whose state directory refuses every write while full[0] is True."""
    spotify = FakeSpotify()
    keeper, store = keeper_on(tmp_path, clock, spotify)
    keeper.start()

    def refuse() -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")

    real_save, real_reserve = TokenStore.save, token_files.reserve_space

    def save(self: TokenStore, tokens: Tokens) -> None:
        refuse()
        real_save(self, tokens)

    def reserve(path: Path, size: int) -> None:
        refuse()
        real_reserve(path, size)

    monkeypatch.setattr(TokenStore, "save", save)
    monkeypatch.setattr(token_files, "reserve_space", reserve)
    return keeper, store, spotify


def test_a_full_disk_stops_every_rotating_call_until_a_write_succeeds(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [True]
    keeper, store, spotify = on_a_disk(tmp_path, clock, monkeypatch, full=full)
    clock.advance(3000 - 600)
    snapshot = keeper.run_due()
    assert spotify.refresh_calls == []  # the space for the rotation was not there
    assert snapshot.state == State.ERROR and str(store.state_dir) in snapshot.message
    assert Retained.HEALTH in snapshot.changed
    for _ in range(5):
        clock.advance(10)  # each retry of the state directory
        assert keeper.run_due().state == State.ERROR
    assert spotify.refresh_calls == []
    full[0] = False
    clock.advance(10)
    snapshot = keeper.run_due()
    assert spotify.refresh_calls == ["refresh-0"] and snapshot.state == State.OK
    on_disk = store.load()
    assert on_disk is not None and on_disk.refresh_token == "refresh-1"


def test_a_rotation_the_disk_refused_is_saved_before_any_other_call(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [False]
    keeper, store, spotify = on_a_disk(tmp_path, clock, monkeypatch, full=full)
    real_release = token_files.TokenFiles.release

    def release_then_fill(self: token_files.TokenFiles) -> None:
        real_release(self)
        full[0] = True  # someone takes the space between the call and the save

    monkeypatch.setattr(token_files.TokenFiles, "release", release_then_fill)
    clock.advance(3000 - 600)
    snapshot = keeper.run_due()
    assert spotify.refresh_calls == ["refresh-0"] and snapshot.state == State.ERROR
    monkeypatch.setattr(token_files.TokenFiles, "release", real_release)
    clock.advance(3000)
    keeper.run_due()
    assert spotify.refresh_calls == ["refresh-0"]  # refresh-1 is not on disk: no call
    full[0] = False
    clock.advance(10)
    snapshot = keeper.run_due()
    assert spotify.refresh_calls == ["refresh-0"]  # saved, not called again
    on_disk = store.load()
    assert on_disk is not None and on_disk.refresh_token == "refresh-1"
    assert Retained.USER_TOKEN in snapshot.changed


def test_a_rejected_client_is_an_error_published_at_once(tmp_path: Path, clock: FakeClock) -> None:
    spotify = FakeSpotify(failures=[ClientRejected("invalid_client")])
    keeper, _store = keeper_on(tmp_path, clock, spotify)
    keeper.start()
    clock.advance(3000 - 600)
    snapshot = keeper.run_due()
    assert snapshot.state == State.ERROR and Retained.HEALTH in snapshot.changed
    assert "spotify.client_id" in snapshot.message


def request(received: float, body: bytes = b"{}") -> Request:
    return Request(Message(topic="t/request/refresh", payload=body), received=received)


def test_retry_after_is_capped_shown_and_kept_across_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    spotify = FakeSpotify(failures=[TransientError("429", status=429, retry_after=1e9)])
    keeper, store = keeper_on(tmp_path, clock, spotify)
    keeper.start()
    clock.advance(3000 - 600)
    snapshot = keeper.run_due()
    until = clock.wall() + RETRY_AFTER_CAP
    assert snapshot.retry_after_until == pytest.approx(until)
    assert store.retry_after_until(clock.wall()) == pytest.approx(until)
    again, _ = keeper_on(tmp_path, clock, spotify)  # a restart on the same state directory
    assert again.start().retry_after_until == pytest.approx(until)
    calls = list(spotify.refresh_calls)
    outcome, snapshot = again.refresh_requested(request(clock.monotonic()), {"reason": "rejected"})
    assert snapshot is None and outcome.reason == NotRefreshed.RETRY_AFTER
    assert outcome.next_allowed_at == pytest.approx(until)
    clock.advance(RETRY_AFTER_CAP - 1)
    again.run_due()
    assert spotify.refresh_calls == calls
    clock.advance(2)
    snapshot = again.run_due()
    assert len(spotify.refresh_calls) == len(calls) + 1 and snapshot.retry_after_until is None
    assert store.retry_after_until(clock.wall()) is None


def test_the_gate_counts_the_interval_from_the_last_success() -> None:
    gate = RefreshGate(min_interval=30)
    gate.attempted(started_wall=0, ended=100, succeeded=True)
    gate.attempted(started_wall=0, ended=110, succeeded=False)
    plain = {"rejected_current": False, "token_issued_at": 0.0}
    assert not gate.should_call(received=120, now=120, **plain)
    assert gate.should_call(received=131, now=131, **plain)


def test_a_refusal_says_retrying_with_the_count_and_the_next_attempt() -> None:
    now = time.time()
    words = not_refreshed(
        {"state": "retrying", "message": "503", "consecutive_failures": 4, "next_refresh": 0.0},
        now=now,
    )
    assert words is not None and "4 failed" in words and "next attempt at 00:00:00 UTC" in words
    held = not_refreshed({"state": "retrying", "retry_after_until": now + 60}, now=now)
    assert held is not None and "Retry-After" in held
    assert not_refreshed({"state": "ok", "consecutive_failures": 0}, now=now) is None
