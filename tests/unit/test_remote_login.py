"""A login pasted over MQTT: only the offered one's state, within its age limit; every refusal
is one sentence, and only a successful login spends the offer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.login import PENDING_MAX_AGE
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.daemon.remote_login import (
    EXCHANGE_BURST,
    EXCHANGE_REFILL,
    MAX_REDIRECT_BYTES,
    REFUSED,
    LoginRefused,
    RemoteLogin,
)
from mqtt_tokend.errors import AuthRejected
from tests.fakes import FakeClock, FakeSpotify

WEBHOOK = "https://ha.example/api/webhook/SECRET-WEBHOOK-ID-123"


@pytest.fixture
def spotify() -> FakeSpotify:
    return FakeSpotify()


@pytest.fixture
def login(tmp_path: Path, spotify: FakeSpotify, clock: FakeClock) -> RemoteLogin:
    store = TokenStore(tmp_path / "state", cipher=TokenCipher([generate_key()]))
    config = SpotifyConfig(client_id="client", redirect_uri=WEBHOOK)
    return RemoteLogin(spotify=spotify, config=config, store=store, now=clock.wall)


def state_of(url: str) -> str:
    return url.split("state=")[1].split("&", maxsplit=1)[0]


def redirect(state: str, code: str = "the-code") -> bytes:
    return f"{WEBHOOK}?code={code}&state={state}".encode()


def refusal(login: RemoteLogin, payload: bytes) -> str:
    with pytest.raises(LoginRefused) as caught:
        login.finish(payload)
    return str(caught.value)


def refuse_codes(spotify: FakeSpotify) -> None:
    """Spotify refuses every code (a junk one, or one already used)."""

    def refuse(*, code: str, **_: object) -> None:
        spotify.codes.append(code)
        raise AuthRejected("authorization: Spotify refused the grant", error="invalid_grant")

    spotify.exchange_code = refuse  # type: ignore[method-assign,assignment]


def hostile_pastes(state: str) -> dict[str, bytes]:
    """One of each kind of wrong paste, named."""
    return {
        "prefix": redirect(state[:-1]),
        "off-by-one": redirect(state[:-1] + ("A" if state[-1] != "A" else "B")),
        "longer": redirect(state + "x"),
        "other": redirect("someone-else"),
        "no-state": b"code=the-code",
        "no-code": f"state={state}".encode(),
        "error-right-state": f"error=access_denied&state={state}".encode(),
        "error-stranger": b"error=Call-555-0100&state=x",
        "bare-code": b"AQBcodeonly",
        "login-link": f"https://accounts.spotify.com/authorize?state={state}".encode(),
        "two-codes": redirect(state, "a") + f"&code=b&state={state}".encode(),
        "binary": b"\xff\xfe",
        "not-a-url": b"http://[::1?code=x&state=y",
        "huge": b"x" * (MAX_REDIRECT_BYTES + 1),
        "empty": b"",
    }


def test_the_offered_state_logs_in_and_spends_the_offer(
    login: RemoteLogin, spotify: FakeSpotify
) -> None:
    state = state_of(login.offer())
    login.finish(redirect(state))
    assert spotify.codes == ["the-code"]
    assert refusal(login, redirect(state, "second-code")) == REFUSED  # no login is pending
    assert spotify.codes == ["the-code"] and login.url is None


def test_every_refusal_is_the_same_sentence_and_leaves_the_offer_standing(
    login: RemoteLogin, spotify: FakeSpotify
) -> None:
    url = login.offer()
    refuse_codes(spotify)
    pastes = hostile_pastes(state_of(url)) | {"junk-code": redirect(state_of(url), "junk")}
    words = {name: refusal(login, paste) for name, paste in pastes.items()}
    assert set(words.values()) == {REFUSED}, words
    assert login.url == url  # the same link still works
    assert spotify.codes == ["junk"]
    spotify.exchange_code = FakeSpotify.exchange_code.__get__(spotify)  # type: ignore[method-assign]
    login.finish(redirect(state_of(url), "the-owners-code"))
    assert spotify.codes[-1] == "the-owners-code" and login.url is None


def test_a_flood_of_junk_codes_with_the_right_state_costs_few_spotify_calls(
    login: RemoteLogin, spotify: FakeSpotify, clock: FakeClock
) -> None:
    url = login.offer()
    refuse_codes(spotify)
    for i in range(10_000):
        refusal(login, redirect(state_of(url), f"junk-{i}"))
    assert len(spotify.codes) == EXCHANGE_BURST
    clock.advance(EXCHANGE_REFILL)
    spotify.exchange_code = FakeSpotify.exchange_code.__get__(spotify)  # type: ignore[method-assign]
    login.finish(redirect(state_of(url), "the-owners-code"))  # the offer stood through it all
    assert len(spotify.codes) == EXCHANGE_BURST + 1


def test_an_error_with_the_offered_state_is_logged_by_its_known_name_only(
    login: RemoteLogin, caplog: pytest.LogCaptureFixture
) -> None:
    state = state_of(login.offer())
    caplog.set_level(logging.INFO)
    refusal(login, f"error=access_denied&state={state}".encode())
    refusal(login, f"error=Call-555-0100&state={state}".encode())
    assert "Spotify reported access_denied" in caplog.text
    assert "Call-555" not in caplog.text and state not in caplog.text


def test_an_offer_older_than_its_age_limit_is_refused_and_renewed(
    login: RemoteLogin, spotify: FakeSpotify, clock: FakeClock
) -> None:
    first = login.offer()
    clock.advance(PENDING_MAX_AGE + 1)
    assert refusal(login, redirect(state_of(first))) == REFUSED
    assert spotify.codes == []
    assert login.url is not None and login.url != first
    assert login.current() == login.url


def test_current_renews_a_stale_offer_and_is_none_without_one(
    login: RemoteLogin, clock: FakeClock
) -> None:
    assert login.current() is None
    first = login.offer()
    assert login.current() == first
    clock.advance(PENDING_MAX_AGE + 1)
    assert login.current() not in (None, first)


def test_repr_shows_no_url_state_or_webhook_id(login: RemoteLogin) -> None:
    url = login.offer()
    for shown in (repr(login), repr(login._pending)):
        assert url not in shown and state_of(url) not in shown
        assert "SECRET-WEBHOOK-ID-123" not in shown and "webhook" not in shown
