"""The Spotify emulator, over real HTTP on loopback: the OAuth rules, the Web API, the faults."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    AuthorizeError,
    SpotifyEmulator,
)
from tests.fakes import FakeClock

REDIRECT = "http://127.0.0.1:8888/callback"
SCOPE = "user-read-playback-state user-modify-playback-state"


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[SpotifyEmulator]:
    """An emulator on a free port whose time moves only when the test moves `clock`."""
    with SpotifyEmulator(clock=clock.wall) as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """One keep-alive client session, as the agent uses."""
    with requests.Session() as session:
        yield session


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def authorize(
    emulator: SpotifyEmulator, http: requests.Session, **overrides: str
) -> requests.Response:
    params = {
        "client_id": DEMO_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "st4te",
        "scope": SCOPE,
        "code_challenge_method": "S256",
        "code_challenge": pkce_pair()[1],
    }
    params = {k: v for k, v in (params | overrides).items() if v != "<omit>"}
    return http.get(f"{emulator.url}/authorize", params=params, allow_redirects=False)


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return {key: values[0] for key, values in query.items()}


def token(
    emulator: SpotifyEmulator,
    http: requests.Session,
    form: dict[str, str],
    *,
    auth: str | None = None,
) -> requests.Response:
    headers = {"Authorization": auth} if auth else {}
    return http.post(f"{emulator.url}/api/token", data=form, headers=headers)


def pkce_login(emulator: SpotifyEmulator, http: requests.Session) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(emulator, http, code_challenge=challenge))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    }
    response = token(emulator, http, form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def confidential_login(emulator: SpotifyEmulator, http: requests.Session) -> dict[str, Any]:
    url = emulator.authorize(
        client_id=DEMO_CONFIDENTIAL_CLIENT_ID, redirect_uri=REDIRECT, state="s", scope=SCOPE
    )
    code = parse_qs(urlsplit(url).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    response = token(
        emulator, http, form, auth=basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pkce_refresh(
    emulator: SpotifyEmulator, http: requests.Session, refresh_token: str
) -> requests.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": DEMO_CLIENT_ID,
    }
    return token(emulator, http, form)


def confidential_refresh(
    emulator: SpotifyEmulator, http: requests.Session, refresh_token: str
) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token(emulator, http, form, auth=basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET))


def me(
    emulator: SpotifyEmulator, http: requests.Session, access_token: str | None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return http.get(f"{emulator.url}/v1/me", headers=headers)


def oauth_error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


# -- authorization: the PKCE round trip and /authorize's rules --------------------------------


def test_pkce_login_round_trip(emulator: SpotifyEmulator, http: requests.Session) -> None:
    verifier, challenge = pkce_pair()
    response = authorize(emulator, http, code_challenge=challenge)
    params = redirect_params(response)
    assert response.headers["Location"].startswith(REDIRECT + "?")
    assert params["state"] == "st4te"

    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    }
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
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    } | change
    assert oauth_error(token(emulator, http, form)) == (400, *expected)


def test_code_is_single_use(
    emulator: SpotifyEmulator, http: requests.Session, issued_code: tuple[str, str]
) -> None:
    code, verifier = issued_code
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    }
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
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    }
    assert oauth_error(token(emulator, http, form))[2] == "Invalid authorization code"


# -- client authentication --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["basic", "form"], ids=["basic-auth", "form-secret"])
def test_confidential_exchange_and_refresh_keeps_token(
    emulator: SpotifyEmulator, http: requests.Session, how: str
) -> None:
    url = emulator.authorize(
        client_id=DEMO_CONFIDENTIAL_CLIENT_ID, redirect_uri=REDIRECT, state="s"
    )
    code = parse_qs(urlsplit(url).query)["code"][0]
    credentials = {"client_id": DEMO_CONFIDENTIAL_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    auth = basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET) if how == "basic" else None
    extra = credentials if how == "form" else {}
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}

    first = token(emulator, http, form | extra, auth=auth).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    again = token(emulator, http, refresh | extra, auth=auth)
    once_more = token(emulator, http, refresh | extra, auth=auth)

    assert again.status_code == once_more.status_code == 200
    assert "refresh_token" not in again.json()
    assert again.json()["access_token"] != first["access_token"]
    assert emulator.calls("refresh_token") == 2


@pytest.mark.parametrize(
    ("auth", "form", "description"),
    [
        (basic(DEMO_CONFIDENTIAL_CLIENT_ID, "wrong"), {}, "Invalid client secret"),
        (
            None,
            {"client_id": DEMO_CONFIDENTIAL_CLIENT_ID, "client_secret": "x"},
            "Invalid client secret",
        ),
        (basic("f" * 32, DEMO_CLIENT_SECRET), {}, "Invalid client"),
        (basic(DEMO_CLIENT_ID, "anything"), {}, "Invalid client secret"),
        ("Basic !!!not-base64", {}, "Invalid client"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), {}, "Invalid client"),
        (None, {}, "Invalid client"),
    ],
    ids=[
        "basic-wrong-secret",
        "form-wrong-secret",
        "unknown-client",
        "public-client-with-secret",
        "bad-base64",
        "no-colon",
        "no-credentials",
    ],
)
def test_client_credentials_rejections(
    emulator: SpotifyEmulator,
    http: requests.Session,
    auth: str | None,
    form: dict[str, str],
    description: str,
) -> None:
    response = token(emulator, http, {"grant_type": "client_credentials"} | form, auth=auth)
    assert oauth_error(response) == (400, "invalid_client", description)


def test_public_client_cannot_get_app_token(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    response = token(
        emulator, http, {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID}
    )
    assert oauth_error(response) == (400, "invalid_client", "Invalid client")


def test_client_credentials_gives_app_token(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    response = token(
        emulator,
        http,
        {"grant_type": "client_credentials"},
        auth=basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET),
    )
    body = response.json()
    assert response.status_code == 200
    assert "refresh_token" not in body
    assert body["expires_in"] == 3600
    forbidden = me(emulator, http, body["access_token"])
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["status"] == 403
    assert emulator.calls("client_credentials") == 1


@pytest.mark.parametrize(
    ("form", "content_type", "expected"),
    [
        ({}, None, ("unsupported_grant_type", "grant_type parameter is missing")),
        ({"grant_type": "password"}, None, ("unsupported_grant_type", "unsupported grant type")),
        (
            {"grant_type": "client_credentials"},
            "application/json",
            ("invalid_request", "Content-Type must be application/x-www-form-urlencoded"),
        ),
        (
            {"grant_type": "refresh_token", "client_id": DEMO_CLIENT_ID},
            None,
            ("invalid_request", "refresh_token must be supplied"),
        ),
    ],
    ids=["missing-grant-type", "password-grant", "json-body", "missing-refresh-token"],
)
def test_token_request_errors(
    emulator: SpotifyEmulator,
    http: requests.Session,
    form: dict[str, str],
    content_type: str | None,
    expected: tuple[str, str],
) -> None:
    if content_type:
        response = http.post(
            f"{emulator.url}/api/token",
            data=json.dumps(form),
            headers={"Content-Type": content_type},
        )
    else:
        response = token(emulator, http, form)
    assert oauth_error(response) == (400, *expected)


# -- refresh ----------------------------------------------------------------------------------


def test_pkce_refresh_rotates_and_revokes_the_old_token(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    first = pkce_login(emulator, http)
    second = pkce_refresh(emulator, http, first["refresh_token"]).json()

    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == SCOPE
    old = pkce_refresh(emulator, http, first["refresh_token"])
    assert oauth_error(old) == (400, "invalid_grant", "Refresh token revoked")
    assert pkce_refresh(emulator, http, second["refresh_token"]).status_code == 200


def test_concurrent_refreshes_of_one_pkce_token_have_one_winner(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    refresh_token = pkce_login(emulator, http)["refresh_token"]

    def attempt(_: int) -> int:
        with requests.Session() as session:
            return pkce_refresh(emulator, session, refresh_token).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))

    assert statuses == [200] + [400] * 7
    assert emulator.calls("refresh_token") == 8


@pytest.mark.parametrize(
    ("refresh_token", "client_id", "description"),
    [
        ("never-issued", DEMO_CLIENT_ID, "Invalid refresh token"),
        (None, DEMO_CONFIDENTIAL_CLIENT_ID, "Invalid refresh token"),
    ],
    ids=["unknown-token", "another-clients-token"],
)
def test_refresh_with_a_foreign_token(
    emulator: SpotifyEmulator,
    http: requests.Session,
    refresh_token: str | None,
    client_id: str,
    description: str,
) -> None:
    real = pkce_login(emulator, http)["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token or real,
        "client_id": client_id,
    }
    assert oauth_error(token(emulator, http, form)) == (400, "invalid_grant", description)


def test_confidential_session_needs_the_secret_to_refresh(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    refresh_token = confidential_login(emulator, http)["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": DEMO_CONFIDENTIAL_CLIENT_ID,
    }
    assert oauth_error(token(emulator, http, form))[1] == "invalid_client"


@pytest.mark.parametrize("kind", ["pkce", "confidential"])
def test_refresh_tokens_die_at_max_age_from_authorization(
    emulator: SpotifyEmulator, http: requests.Session, clock: FakeClock, kind: str
) -> None:
    emulator.refresh_token_max_age = 100.0
    login, refresh = (
        (pkce_login, pkce_refresh) if kind == "pkce" else (confidential_login, confidential_refresh)
    )
    current = login(emulator, http)["refresh_token"]
    clock.advance(60)
    answer = refresh(emulator, http, current)
    assert answer.status_code == 200
    current = answer.json().get("refresh_token", current)

    clock.advance(40)  # 100 s after the authorization, whatever the refreshes did

    assert oauth_error(refresh(emulator, http, current)) == (
        400,
        "invalid_grant",
        "Refresh token revoked",
    )


def test_fractional_lifetime_is_sent_as_a_number(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    emulator.token_lifetime = 2.5
    assert pkce_login(emulator, http)["expires_in"] == 2.5
    with pytest.raises(ValueError, match="token_lifetime"):
        emulator.token_lifetime = 0


def test_revoke_all(emulator: SpotifyEmulator, http: requests.Session) -> None:
    tokens = pkce_login(emulator, http)
    emulator.revoke_all()
    assert oauth_error(pkce_refresh(emulator, http, tokens["refresh_token"]))[2] == (
        "Refresh token revoked"
    )
    assert me(emulator, http, tokens["access_token"]).json()["error"]["message"] == (
        "Invalid access token"
    )
    assert pkce_login(emulator, http)["access_token"]  # a new login works again


# -- the Web API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("no-header", "Invalid access token"),
        ("unknown", "Invalid access token"),
        ("expired-by-clock", "The access token expired"),
        ("expired-by-control", "The access token expired"),
    ],
    ids=["no-header", "unknown", "expired-by-clock", "expired-by-control"],
)
def test_web_api_401(
    emulator: SpotifyEmulator,
    http: requests.Session,
    clock: FakeClock,
    scenario: str,
    message: str,
) -> None:
    access_token: str | None = pkce_login(emulator, http)["access_token"]
    if scenario == "no-header":
        access_token = None
    elif scenario == "unknown":
        access_token = "not-a-token"
    elif scenario == "expired-by-clock":
        clock.advance(3600)
    else:
        emulator.expire_access_tokens()

    response = me(emulator, http, access_token)

    assert response.status_code == 401
    assert response.json() == {"error": {"status": 401, "message": message}}


def test_access_token_valid_until_its_lifetime(
    emulator: SpotifyEmulator, http: requests.Session, clock: FakeClock
) -> None:
    access_token = pkce_login(emulator, http)["access_token"]
    clock.advance(3599)
    assert me(emulator, http, access_token).status_code == 200
    emulator.expire_access_tokens()
    fresh = pkce_login(emulator, http)["access_token"]
    assert me(emulator, http, fresh).status_code == 200  # only tokens issued before expire


def test_devices(emulator: SpotifyEmulator, http: requests.Session) -> None:
    access_token = pkce_login(emulator, http)["access_token"]
    response = http.get(
        f"{emulator.url}/v1/me/player/devices", headers={"Authorization": f"Bearer {access_token}"}
    )
    devices = response.json()["devices"]
    assert response.status_code == 200
    assert "LoFi Pi" in [device["name"] for device in devices]
    assert {"id", "is_active", "type", "volume_percent"} <= set(devices[0])
    assert emulator.calls("devices") == 1


# -- faults -----------------------------------------------------------------------------------


def test_fault_status(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("status", status=502)
    tokens_before = emulator.calls("token")
    response = token(emulator, http, {"grant_type": "client_credentials"})
    assert response.status_code == 502
    assert response.json()["error"] == "server_error"
    assert emulator.calls("token") == tokens_before + 1


def test_fault_rate_limit(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("rate_limit", endpoint="me", retry_after=2.2)
    response = me(emulator, http, "whatever")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["status"] == 429


def test_fault_garbage(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("garbage")
    response = token(emulator, http, {"grant_type": "client_credentials"})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize("endpoint", ["token", "me", "devices"])
def test_fault_truncated(emulator: SpotifyEmulator, http: requests.Session, endpoint: str) -> None:
    emulator.inject("truncated", endpoint=endpoint)
    path = {"token": "/api/token", "me": "/v1/me", "devices": "/v1/me/player/devices"}[endpoint]
    method = "POST" if endpoint == "token" else "GET"
    response = http.request(method, f"{emulator.url}{path}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content) > 0
    with pytest.raises(ValueError):
        response.json()


def test_fault_drop(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("drop")
    with pytest.raises(requests.ConnectionError):
        token(emulator, http, {"grant_type": "client_credentials"})
    assert token(emulator, http, {"grant_type": "client_credentials"}).status_code == 400


def test_fault_delay(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("delay", endpoint="any", delay=0.2)
    started = time.monotonic()
    response = me(emulator, http, pkce_login(emulator, http)["access_token"])
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200


def test_fault_authorize_endpoint(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("status", endpoint="authorize", status=500)
    response = authorize(emulator, http)
    assert response.status_code == 500
    assert "code" in redirect_params(authorize(emulator, http))


def test_faults_count_down_in_fifo_order(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("status", count=2, status=500)
    emulator.inject("rate_limit")
    emulator.inject("status", endpoint="me", status=503)
    form = {"grant_type": "client_credentials"}

    statuses = [token(emulator, http, form).status_code for _ in range(4)]

    assert statuses == [500, 500, 429, 400]
    assert me(emulator, http, None).status_code == 503  # the "me" fault waited for its turn
    assert me(emulator, http, None).status_code == 401


def test_fault_until_cleared(emulator: SpotifyEmulator, http: requests.Session) -> None:
    emulator.inject("status", endpoint="any", count=None, status=503)
    assert [me(emulator, http, None).status_code for _ in range(3)] == [503, 503, 503]
    assert token(emulator, http, {}).status_code == 503
    emulator.clear_faults()
    assert me(emulator, http, None).status_code == 401


def test_faulted_refresh_changes_nothing(emulator: SpotifyEmulator, http: requests.Session) -> None:
    refresh_token = pkce_login(emulator, http)["refresh_token"]
    emulator.inject("truncated")
    assert pkce_refresh(emulator, http, refresh_token).status_code == 200  # but unreadable
    assert pkce_refresh(emulator, http, refresh_token).json()["refresh_token"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "explode"}, "fault kind"),
        ({"kind": "status", "endpoint": "jukebox"}, "fault endpoint"),
        ({"kind": "status", "count": 0}, "fault count"),
        ({"kind": "status", "status": 200}, "fault status"),
        ({"kind": "delay", "delay": -1}, "fault delay"),
    ],
    ids=["kind", "endpoint", "count", "status", "delay"],
)
def test_inject_rejects_nonsense(
    emulator: SpotifyEmulator, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        emulator.inject(**kwargs)


# -- control endpoints and counters -----------------------------------------------------------


def test_control_endpoints(emulator: SpotifyEmulator, http: requests.Session) -> None:
    control = f"{emulator.url}/_emulator"
    tokens = pkce_login(emulator, http)

    assert http.post(f"{control}/faults", json={"kind": "rate_limit", "retry_after": 7}).ok
    assert token(emulator, http, {}).headers["Retry-After"] == "7"
    http.post(f"{control}/faults", json={"kind": "status", "count": None, "endpoint": "me"})
    assert me(emulator, http, tokens["access_token"]).status_code == 503
    assert http.delete(f"{control}/faults").ok
    assert me(emulator, http, tokens["access_token"]).status_code == 200

    assert http.post(f"{control}/expire").ok
    assert me(emulator, http, tokens["access_token"]).json()["error"]["message"] == (
        "The access token expired"
    )
    assert http.post(f"{control}/revoke").ok
    assert oauth_error(pkce_refresh(emulator, http, tokens["refresh_token"]))[2] == (
        "Refresh token revoked"
    )

    config = http.post(f"{control}/config", json={"token_lifetime": 5, "refresh_token_max_age": 60})
    assert config.json() == {
        "token_lifetime": 5.0,
        "refresh_token_max_age": 60.0,
        "revoke_on_refresh": False,
    }
    assert emulator.refresh_token_max_age == 60.0
    assert pkce_login(emulator, http)["expires_in"] == 5
    assert http.post(f"{control}/config", json={"refresh_token_max_age": None}).ok
    assert emulator.refresh_token_max_age is None

    stats = http.get(f"{control}/stats").json()
    assert stats["authorization_code"] == 2
    assert stats["refresh_token"] == 1
    assert stats["me"] == 3
    assert http.delete(f"{control}/stats").json()["token"] == 0
    assert emulator.calls("token") == 0


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("faults", b"{not json", "JSON object"),
        ("faults", b"[1, 2]", "JSON object"),
        ("faults", b"{}", "needs a kind"),
        ("faults", b'{"kind": "status", "colour": 1}', "unknown keys"),
        ("faults", b'{"kind": "meteor"}', "fault kind"),
        ("faults", b'{"kind": "status", "count": "two"}', "fault count"),
        ("config", b'{"token_lifetime": -3}', "token_lifetime"),
        ("config", b'{"token_lifetime": "long"}', "numbers"),
        ("config", b"", "JSON object"),
    ],
    ids=[
        "faults-bad-json",
        "faults-array",
        "faults-no-kind",
        "faults-unknown-key",
        "faults-bad-kind",
        "faults-bad-count",
        "config-negative",
        "config-string",
        "config-empty",
    ],
)
def test_control_endpoints_reject_bad_json(
    emulator: SpotifyEmulator, http: requests.Session, path: str, body: bytes, message: str
) -> None:
    response = http.post(
        f"{emulator.url}/_emulator/{path}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emulator.token_lifetime == 3600.0


def test_counters(emulator: SpotifyEmulator, http: requests.Session) -> None:
    pkce_login(emulator, http)
    confidential_login(emulator, http)
    token(emulator, http, {"grant_type": "bogus"})

    assert emulator.calls("authorize") == 2
    assert emulator.calls("token") == 3
    assert emulator.calls("authorization_code") == 2
    assert emulator.calls("refresh_token") == emulator.calls("client_credentials") == 0
    emulator.reset_stats()
    assert emulator.calls("token") == 0
    with pytest.raises(ValueError, match="no counter"):
        emulator.calls("tokens")


# -- HTTP framing and robustness --------------------------------------------------------------


def raw_request(emulator: SpotifyEmulator, request: bytes) -> bytes:
    """Send bytes as they are and read until the server closes the connection."""
    url = urlsplit(emulator.url)
    assert url.hostname and url.port
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Length: 70000\r\n", b"413"),
        (b"Content-Length: -5\r\n", b"400"),
        (b"Content-Length: lots\r\n", b"400"),
        (b"Transfer-Encoding: chunked\r\n", b"411"),
    ],
    ids=["too-large", "negative-length", "bad-length", "chunked"],
)
def test_bad_framing_answers_and_closes(
    emulator: SpotifyEmulator, headers: bytes, status: bytes
) -> None:
    request = b"POST /api/token HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    answer = raw_request(emulator, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in head
    assert json.loads(body)["error"]["status"] == int(status)


def test_malformed_form_and_basic_do_not_break_the_server(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    bad_utf8 = http.post(
        f"{emulator.url}/api/token",
        data=b"grant_type=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert oauth_error(bad_utf8)[:2] == (400, "invalid_request")
    odd = http.post(
        f"{emulator.url}/api/token",
        data="grant_type=client_credentials&&=&%zz",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic \u00e9",
        },
    )
    assert oauth_error(odd)[:2] == (400, "invalid_client")
    assert pkce_login(emulator, http)["access_token"]


def test_unknown_path_and_wrong_method(emulator: SpotifyEmulator, http: requests.Session) -> None:
    missing = http.get(f"{emulator.url}/v1/me/player/recently-played")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == 404
    assert http.get(f"{emulator.url}/api/token").status_code == 405
    assert http.put(f"{emulator.url}/v1/me").status_code == 405


def test_keep_alive(emulator: SpotifyEmulator) -> None:
    url = urlsplit(emulator.url)
    assert url.hostname and url.port
    connection = HTTPConnection(url.hostname, url.port, timeout=5)
    sockets = []
    try:
        for _ in range(3):
            connection.request("GET", "/v1/me")
            response = connection.getresponse()
            assert response.status == 401
            assert response.getheader("Content-Length") == str(len(response.read()))
            sockets.append(connection.sock)
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3  # one connection served all three
    finally:
        connection.close()


def test_logs_hold_no_codes_or_tokens(
    emulator: SpotifyEmulator, http: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mqtt_tokend")
    response = authorize(emulator, http)
    code = redirect_params(response)["code"]
    tokens = pkce_login(emulator, http)
    me(emulator, http, tokens["access_token"])
    logged = caplog.text
    assert "/authorize" in logged
    for secret in (code, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in logged


def test_lifecycle(clock: FakeClock) -> None:
    emulator = SpotifyEmulator(clock=clock.wall, clients={"abc": None})
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.url
    with emulator, requests.Session() as session:
        url = emulator.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert session.get(f"{url}/v1/me").status_code == 401  # a pooled connection
        with pytest.raises(RuntimeError, match="already running"):
            emulator.start()
        with pytest.raises(AuthorizeError, match="Invalid client"):
            emulator.authorize(client_id=DEMO_CLIENT_ID, redirect_uri=REDIRECT, state="s")
    emulator.stop()  # twice is fine
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/me", timeout=5)


# -- main() -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_main_prints_its_url_and_stops_on_signal(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mqtt_tokend.dev.emulator", "--port", "0", "--token-lifetime", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.fullmatch(r"Spotify emulator listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        url = match.group(1)
        clients = "".join(process.stdout.readline() for _ in range(3))
        assert DEMO_CLIENT_ID in clients and DEMO_CONFIDENTIAL_CLIENT_ID in clients
        answer = requests.post(
            f"{url}/api/token",
            data={"grant_type": "client_credentials"},
            auth=(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET),
            timeout=5,
        )
        assert answer.json()["expires_in"] == 5
        process.send_signal(stop_signal)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_main_rejects_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mqtt_tokend.dev.emulator", "--token-lifetime", "-1"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2
    assert "positive number of seconds" in done.stderr


def test_authorize_url_encoding_round_trip(emulator: SpotifyEmulator) -> None:
    url = emulator.authorize(
        client_id=DEMO_CONFIDENTIAL_CLIENT_ID,
        redirect_uri=REDIRECT + "?" + urlencode({"keep": "me"}),
        state="a&b=c",
    )
    query = parse_qs(urlsplit(url).query)
    assert query["keep"] == ["me"]
    assert query["state"] == ["a&b=c"]


def test_without_rotation_a_pkce_refresh_token_is_kept_as_spotify_does_since_2026() -> None:
    import base64
    import hashlib
    import secrets
    import urllib.parse

    import requests

    from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator

    with SpotifyEmulator() as emu:
        emu.rotate_refresh_tokens = False
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        redirect = "http://127.0.0.1:8888/callback"
        url = emu.authorize(
            client_id=DEMO_CLIENT_ID,
            redirect_uri=redirect,
            state="s",
            code_challenge=challenge.rstrip(b"=").decode(),
        )
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": DEMO_CLIENT_ID,
        }
        refresh_token = requests.post(f"{emu.url}/api/token", data=form, timeout=5).json()[
            "refresh_token"
        ]
        for _ in range(3):
            answer = requests.post(
                f"{emu.url}/api/token",
                timeout=5,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": DEMO_CLIENT_ID,
                },
            ).json()
            assert "access_token" in answer and "refresh_token" not in answer


def test_fault_trickle_sends_a_503_a_byte_at_a_time(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    emulator.inject("trickle", delay=0.001)
    response = token(emulator, http, {"grant_type": "client_credentials"})
    assert response.status_code == 503
    assert response.json()["error"] == "server_error"
    assert response.headers["Connection"] == "close"
