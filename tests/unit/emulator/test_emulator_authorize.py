"""The Spotify emulator's /authorize and code exchange, over real HTTP on loopback: the PKCE
round trip, the redirect rules, single-use codes that expire."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    AuthorizeError,
    SpotifyEmulator,
)
from tests.fakes import FakeClock
from tests.unit.emulator.helpers import (
    REDIRECT,
    SCOPE,
    authorize,
    me,
    oauth_error,
    pkce_exchange,
    pkce_pair,
    redirect_params,
    token,
)

# -- authorization: the PKCE round trip and /authorize's rules --------------------------------


def test_pkce_login_round_trip(emulator: SpotifyEmulator, http: requests.Session) -> None:
    verifier, challenge = pkce_pair()
    response = authorize(emulator, http, code_challenge=challenge)
    params = redirect_params(response)
    assert response.headers["Location"].startswith(REDIRECT + "?")
    assert params["state"] == "st4te"

    form = pkce_exchange(params["code"], verifier)
    answer = token(emulator, http, form)

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == SCOPE
    assert body["expires_in"] == 3600
    assert isinstance(body["expires_in"], int)
    assert body["access_token"] and body["refresh_token"]
    user = me(emulator, http, body["access_token"])
    assert user.status_code == 200
    assert {"id", "display_name", "email", "product", "country", "type", "uri"} <= set(user.json())
    assert (emulator.calls("authorize"), emulator.calls("token"), emulator.calls("me")) == (1, 1, 1)


def test_python_authorize_matches_http(emulator: SpotifyEmulator) -> None:
    _, challenge = pkce_pair()
    url = emulator.authorize(
        client_id=DEMO_CLIENT_ID, redirect_uri=REDIRECT, state="x y", code_challenge=challenge
    )
    assert url.startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(url).query)["state"] == ["x y"]
    with pytest.raises(AuthorizeError, match="Invalid redirect URI"):
        emulator.authorize(
            client_id=DEMO_CLIENT_ID,
            redirect_uri="http://localhost:8888/callback",
            state="s",
            code_challenge=challenge,
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_id": "0" * 32}, "INVALID_CLIENT: Invalid client"),
        (
            {"redirect_uri": "http://localhost:8888/callback"},
            "INVALID_CLIENT: Invalid redirect URI",
        ),
        ({"redirect_uri": "https://localhost/callback"}, "INVALID_CLIENT: Invalid redirect URI"),
        ({"redirect_uri": "http://lofi.example.com/cb"}, "INVALID_CLIENT: Insecure redirect URI"),
        ({"redirect_uri": "http://192.168.1.20:8888/cb"}, "INVALID_CLIENT: Insecure redirect URI"),
        ({"redirect_uri": "<omit>"}, "INVALID_CLIENT: Invalid redirect URI"),
        ({"redirect_uri": "http://127.0.0.1:99999/cb"}, "INVALID_CLIENT: Invalid redirect URI"),
    ],
    ids=["unknown-client", "localhost", "https-localhost", "insecure", "lan-ip", "missing", "port"],
)
def test_authorize_error_page(
    emulator: SpotifyEmulator, http: requests.Session, overrides: dict[str, str], message: str
) -> None:
    response = authorize(emulator, http, **overrides)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert message in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    ["http://127.0.0.1:8888/callback", "http://[::1]:8888/cb", "https://lofi.example.com/cb?x=1"],
    ids=["ipv4-loopback", "ipv6-loopback", "https"],
)
def test_authorize_accepts_spotify_redirect_uris(
    emulator: SpotifyEmulator, http: requests.Session, redirect_uri: str
) -> None:
    response = authorize(emulator, http, redirect_uri=redirect_uri)
    assert "code" in redirect_params(response)
    assert response.headers["Location"].startswith(redirect_uri)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": "<omit>"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
    ids=["implicit-grant", "public-without-pkce", "plain-challenge"],
)
def test_authorize_redirects_with_error(
    emulator: SpotifyEmulator, http: requests.Session, overrides: dict[str, str], error: str
) -> None:
    params = redirect_params(authorize(emulator, http, **overrides))
    assert params == {"error": error, "state": "st4te"}


def test_confidential_client_may_skip_pkce(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    response = authorize(
        emulator, http, client_id=DEMO_CONFIDENTIAL_CLIENT_ID, code_challenge="<omit>"
    )
    assert "code" in redirect_params(response)


# -- the code exchange ------------------------------------------------------------------------


@pytest.fixture
def issued_code(emulator: SpotifyEmulator) -> tuple[str, str]:
    """(code, verifier) of a fresh PKCE authorization."""
    verifier, challenge = pkce_pair()
    url = emulator.authorize(
        client_id=DEMO_CLIENT_ID, redirect_uri=REDIRECT, state="s", code_challenge=challenge
    )
    return parse_qs(urlsplit(url).query)["code"][0], verifier


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"code_verifier": "wrong" * 10}, ("invalid_grant", "code_verifier was incorrect")),
        (
            {"redirect_uri": "http://127.0.0.1:9999/other"},
            ("invalid_grant", "Invalid redirect URI"),
        ),
        ({"code": "no-such-code"}, ("invalid_grant", "Invalid authorization code")),
        ({"code": ""}, ("invalid_request", "code must be supplied")),
        ({"code_verifier": ""}, ("invalid_request", "code_verifier must be supplied")),
        (
            {"client_id": DEMO_CONFIDENTIAL_CLIENT_ID},
            ("invalid_grant", "Invalid authorization code"),
        ),
        ({"client_id": "f" * 32}, ("invalid_client", "Invalid client")),
    ],
    ids=[
        "wrong-verifier",
        "redirect-mismatch",
        "unknown-code",
        "missing-code",
        "missing-verifier",
        "other-clients-code",
        "unknown-client",
    ],
)
def test_code_exchange_errors(
    emulator: SpotifyEmulator,
    http: requests.Session,
    issued_code: tuple[str, str],
    change: dict[str, str],
    expected: tuple[str, str],
) -> None:
    code, verifier = issued_code
    form = pkce_exchange(code, verifier) | change
    assert oauth_error(token(emulator, http, form)) == (400, *expected)


def test_code_is_single_use(
    emulator: SpotifyEmulator, http: requests.Session, issued_code: tuple[str, str]
) -> None:
    code, verifier = issued_code
    form = pkce_exchange(code, verifier)
    assert token(emulator, http, form).status_code == 200
    assert oauth_error(token(emulator, http, form)) == (
        400,
        "invalid_grant",
        "Invalid authorization code",
    )


def test_code_expires_after_ten_minutes(
    emulator: SpotifyEmulator,
    http: requests.Session,
    issued_code: tuple[str, str],
    clock: FakeClock,
) -> None:
    code, verifier = issued_code
    clock.advance(600)
    form = pkce_exchange(code, verifier)
    assert oauth_error(token(emulator, http, form))[2] == "Invalid authorization code"


def test_authorize_url_encoding_round_trip(emulator: SpotifyEmulator) -> None:
    url = emulator.authorize(
        client_id=DEMO_CONFIDENTIAL_CLIENT_ID,
        redirect_uri=REDIRECT + "?" + urlencode({"keep": "me"}),
        state="a&b=c",
    )
    query = parse_qs(urlsplit(url).query)
    assert query["keep"] == ["me"]
    assert query["state"] == ["a&b=c"]
