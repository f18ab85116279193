"""A login pasted over MQTT: only the offered one's state, within its age limit, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.login import PENDING_MAX_AGE
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.errors import InputError
from tests.fakes import FakeClock, FakeSpotify


@pytest.fixture
def spotify() -> FakeSpotify:
    return FakeSpotify()


@pytest.fixture
def login(tmp_path: Path, spotify: FakeSpotify, clock: FakeClock) -> RemoteLogin:
    store = TokenStore(tmp_path / "state", cipher=TokenCipher([generate_key()]))
    return RemoteLogin(
        spotify=spotify, config=SpotifyConfig(client_id="client"), store=store, now=clock.wall
    )


def state_of(url: str) -> str:
    return url.split("state=")[1].split("&", maxsplit=1)[0]


def redirect(state: str, code: str = "the-code") -> bytes:
    return f"http://127.0.0.1:8888/callback?code={code}&state={state}".encode()


def test_the_offered_state_logs_in_once(login: RemoteLogin, spotify: FakeSpotify) -> None:
    state = state_of(login.offer())
    login.finish(redirect(state))
    assert spotify.codes == ["the-code"]
    with pytest.raises(InputError, match="no login is pending"):
        login.finish(redirect(state, "second-code"))
    assert spotify.codes == ["the-code"]


def test_a_refused_code_uses_the_offer_up_and_a_new_one_replaces_it(
    login: RemoteLogin, spotify: FakeSpotify
) -> None:
    """Spotify refusing the code still spends the offer: a flood with the right state costs
    one Spotify call, and the next paste needs the new URL."""
    first = login.offer()

    def refuse(**_: object) -> None:
        spotify.codes.append("refused")
        raise InputError("Spotify refused the code")

    spotify.exchange_code = refuse  # type: ignore[method-assign,assignment]
    for _ in range(100):
        with pytest.raises(InputError):
            login.finish(redirect(state_of(first)))
    assert spotify.codes == ["refused"]
    assert login.url is not None and login.url != first


def test_a_bare_code_is_refused_over_mqtt(login: RemoteLogin, spotify: FakeSpotify) -> None:
    login.offer()
    with pytest.raises(InputError, match="whole address"):
        login.finish(b"AQBcodeonly")
    assert spotify.codes == []


def test_a_second_state_or_code_in_the_paste_is_refused(
    login: RemoteLogin, spotify: FakeSpotify
) -> None:
    """The attack's shape: the offered URL (with its state) followed by another code."""
    url = login.offer()
    state = state_of(url)
    with pytest.raises(InputError):
        login.finish(f"{url}&code=attacker&state={state}".encode())
    with pytest.raises(InputError, match="more than one"):
        login.finish(redirect(state, "attacker") + f"&code=x&state={state}".encode())
    assert spotify.codes == []


def test_an_offer_older_than_its_age_limit_is_refused_and_renewed(
    login: RemoteLogin, spotify: FakeSpotify, clock: FakeClock
) -> None:
    first = login.offer()
    clock.advance(PENDING_MAX_AGE + 1)
    with pytest.raises(InputError, match="too old"):
        login.finish(redirect(state_of(first)))
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
