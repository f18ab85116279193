"""The Spotify emulator's tokens, over real HTTP on loopback: client authentication, refresh
(rotation, revocation, the six-month limit) and the access token on the Web API."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)
from tests.fakes import FakeClock
from tests.unit.emulator.helpers import (
    REDIRECT,
    SCOPE,
    basic,
    confidential_login,
    confidential_refresh,
    me,
    oauth_error,
    pkce_login,
    pkce_refresh,
    token,
)

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


def test_without_rotation_a_pkce_refresh_token_is_kept_as_spotify_does_since_2026(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    emulator.rotate_refresh_tokens = False
    refresh_token = pkce_login(emulator, http)["refresh_token"]
    for _ in range(3):
        answer = pkce_refresh(emulator, http, refresh_token).json()
        assert "access_token" in answer and "refresh_token" not in answer
