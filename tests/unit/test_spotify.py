"""The Spotify client without a network: canned answers through a custom requests adapter."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.errors import (
    AccessTokenRejected,
    AuthRejected,
    ClientRejected,
    ConfigError,
    SpotifyError,
    TokendError,
    TransientError,
)
from tests.unit.spotify_canned import (
    ACCESS,
    ACCOUNTS,
    API,
    CAPTIVE_PORTAL,
    CLIENT_ID,
    CODE,
    KNOWN_SECRETS,
    NEW_REFRESH,
    REFRESH,
    SECRET,
    TOKEN_CASES,
    TOKEN_IDS,
    VERIFIER,
    Answer,
    Canned,
    assert_no_secrets,
    good_token,
    make_client,
    web_api_error,
)


@pytest.mark.parametrize(("answer", "expected", "retry_after"), TOKEN_CASES, ids=TOKEN_IDS)
def test_refresh_outcome(
    answer: Answer, expected: type[BaseException] | None, retry_after: float | None
) -> None:
    client, _ = make_client(answer)
    if expected is None:
        grant = client.refresh(REFRESH)
        assert isinstance(grant, TokenGrant)
        assert grant.access_token == ACCESS
        assert grant.expires_in == 3600.0
        assert grant.scope == "user-read-playback-state"
        assert isinstance(answer, Canned) and isinstance(answer.body, dict)
        assert grant.refresh_token == answer.body.get("refresh_token")
        return
    with pytest.raises(TokendError) as caught:
        client.refresh(REFRESH)
    error = caught.value
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    if isinstance(error, TransientError):
        assert error.retry_after == retry_after
    assert_no_secrets(error)


def test_invalid_client_is_a_configuration_error_naming_the_keys() -> None:
    client, _ = make_client(Canned(401, {"error": "invalid_client"}), secret=SECRET)
    with pytest.raises(ConfigError) as caught:
        client.refresh(REFRESH)
    assert "spotify.client_id" in str(caught.value)
    assert "spotify.client_secret" in str(caught.value)


def test_invalid_grant_keeps_spotify_description() -> None:
    body = {"error": "invalid_grant", "error_description": "Refresh token revoked"}
    client, _ = make_client(Canned(400, body))
    with pytest.raises(AuthRejected) as caught:
        client.refresh(REFRESH)
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == "Refresh token revoked"


@pytest.mark.parametrize("status", [500, 502, 503, 504], ids=lambda s: f"http-{s}")
def test_server_errors_carry_their_status(status: int) -> None:
    client, _ = make_client(Canned(status, b"oops"))
    with pytest.raises(TransientError) as caught:
        client.refresh(REFRESH)
    assert caught.value.status == status


ME_CASES: list[tuple[Canned, type[BaseException]]] = [
    (Canned(401, web_api_error(401, "The access token expired")), AccessTokenRejected),
    (Canned(401, web_api_error(401, "Invalid access token")), AccessTokenRejected),
    (Canned(401, web_api_error(401, "Bad or expired token.")), AccessTokenRejected),
    (Canned(401, web_api_error(401, "Permissions missing")), AccessTokenRejected),
    (Canned(401, b""), AccessTokenRejected),
    (
        Canned(403, web_api_error(403, "User not registered in the Developer Dashboard")),
        SpotifyError,
    ),
    (Canned(404, web_api_error(404, "Not found")), SpotifyError),
    (Canned(429, b"", {"Retry-After": "3"}), TransientError),
    (Canned(503, b""), TransientError),
    (Canned(403, CAPTIVE_PORTAL), TransientError),
    (Canned(200, b"<html>"), TransientError),
]
ME_IDS = [
    "401-token-expired",
    "401-invalid-token",
    "401-old-message-text",
    "401-unexpected-message-text",
    "401-no-body",
    "403-not-registered",
    "404",
    "429",
    "503",
    "403-html-captive-portal",
    "200-html",
]


@pytest.mark.parametrize(("answer", "expected"), ME_CASES, ids=ME_IDS)
def test_me_outcome(answer: Canned, expected: type[BaseException]) -> None:
    client, _ = make_client(answer)
    with pytest.raises(TokendError) as caught:
        client.me(ACCESS)
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"
    assert_no_secrets(caught.value)


def test_me_returns_profile_and_sends_bearer_token() -> None:
    client, adapter = make_client(Canned(200, {"id": "alice", "display_name": "Alice"}))
    assert client.me(ACCESS) == {"id": "alice", "display_name": "Alice"}
    request = adapter.requests[0]
    assert request.method == "GET"
    assert request.url == f"{API}/v1/me"
    assert request.headers["Authorization"] == f"Bearer {ACCESS}"


def test_devices_keeps_only_device_objects() -> None:
    body = {"devices": [{"id": "d1", "name": "LoFi Pi"}, "junk", 3]}
    client, adapter = make_client(Canned(200, body))
    assert client.devices(ACCESS) == [{"id": "d1", "name": "LoFi Pi"}]
    assert adapter.requests[0].url == f"{API}/v1/me/player/devices"


def test_devices_without_a_list_is_transient() -> None:
    client, _ = make_client(Canned(200, {"devices": None}))
    with pytest.raises(TransientError):
        client.devices(ACCESS)


def test_pkce_client_sends_client_id_in_form_and_no_authorization() -> None:
    client, adapter = make_client(Canned(200, good_token(refresh_token=NEW_REFRESH)))
    assert not client.confidential
    client.refresh(REFRESH)
    request = adapter.requests[0]
    assert request.method == "POST"
    assert request.url == f"{ACCOUNTS}/api/token"
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert adapter.form() == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT_ID,
    }


def test_confidential_client_uses_basic_auth_and_no_client_id_in_form() -> None:
    client, adapter = make_client(Canned(200, good_token()), secret=SECRET)
    assert client.confidential
    client.refresh(REFRESH)
    request = adapter.requests[0]
    expected = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    form = adapter.form()
    assert "client_id" not in form
    assert "client_secret" not in form
    assert form == {"grant_type": "refresh_token", "refresh_token": REFRESH}


def test_exchange_code_sends_verifier_for_pkce() -> None:
    client, adapter = make_client(Canned(200, good_token(refresh_token=NEW_REFRESH)))
    grant = client.exchange_code(
        code=CODE, redirect_uri="http://127.0.0.1:8888/callback", code_verifier=VERIFIER
    )
    assert grant.refresh_token == NEW_REFRESH
    assert adapter.form() == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": "http://127.0.0.1:8888/callback",
        "code_verifier": VERIFIER,
        "client_id": CLIENT_ID,
    }


def test_exchange_code_without_refresh_token_is_refused() -> None:
    client, _ = make_client(Canned(200, good_token()), secret=SECRET)
    with pytest.raises(SpotifyError) as caught:
        client.exchange_code(code=CODE, redirect_uri="http://127.0.0.1:8888/callback")
    assert "refresh token" in str(caught.value)
    assert_no_secrets(caught.value)


def test_client_credentials_needs_a_secret() -> None:
    client, adapter = make_client(Canned(200, good_token()))
    with pytest.raises(ClientRejected):
        client.client_credentials()
    assert adapter.requests == []


def test_client_credentials_with_secret() -> None:
    client, adapter = make_client(Canned(200, good_token()), secret=SECRET)
    grant = client.client_credentials()
    assert grant.access_token == ACCESS
    assert adapter.form() == {"grant_type": "client_credentials"}
    assert adapter.requests[0].headers["Authorization"].startswith("Basic ")


def test_one_session_is_reused_and_timeouts_are_passed() -> None:
    client, adapter = make_client(
        Canned(200, good_token(refresh_token=NEW_REFRESH)),
        Canned(200, {"id": "alice"}),
        Canned(200, {"devices": []}),
        Canned(200, good_token(refresh_token="r3")),
        timeout=4.25,
    )
    client.refresh(REFRESH)
    client.me(ACCESS)
    client.devices(ACCESS)
    client.refresh(NEW_REFRESH)
    # Every call went through the one mounted adapter: no fresh Session per call.
    assert len(adapter.requests) == 4
    assert adapter.timeouts == [4.25] * 4


def test_network_error_keeps_its_cause_for_debugging() -> None:
    client, _ = make_client(requests.ConnectionError("Connection refused"))
    with pytest.raises(TransientError) as caught:
        client.refresh(REFRESH)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert "ConnectionError" in str(caught.value)


@pytest.mark.parametrize("secret", ["", SECRET], ids=["pkce", "confidential"])
def test_authorize_url(secret: str) -> None:
    client, adapter = make_client(Canned(200, b""), secret=secret)
    url = client.authorize_url(
        redirect_uri="http://127.0.0.1:8888/callback",
        state="the-state",
        scopes=["user-read-playback-state", "user-modify-playback-state"],
        code_challenge=None if secret else "the-challenge",
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ACCOUNTS}/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == "http://127.0.0.1:8888/callback"
    assert query["state"] == "the-state"
    assert query["scope"] == "user-read-playback-state user-modify-playback-state"
    if secret:
        assert "code_challenge" not in query
        assert "code_challenge_method" not in query
    else:
        assert query["code_challenge"] == "the-challenge"
        assert query["code_challenge_method"] == "S256"
    assert SECRET not in url
    assert adapter.requests == []


def test_reprs_hold_no_secret() -> None:
    client, _ = make_client(Canned(200, good_token(refresh_token=NEW_REFRESH)), secret=SECRET)
    grant = client.refresh(REFRESH)
    for text in (repr(client), str(client), repr(grant), str(grant)):
        for known in KNOWN_SECRETS:
            assert known not in text
    assert CLIENT_ID in repr(client)
