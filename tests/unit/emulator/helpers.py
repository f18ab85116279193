"""Talking to the Spotify emulator as a client does: the PKCE and confidential logins, refreshes,
the Web API and raw bytes on its socket (for the tests here and the emulator's tool tests)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)

REDIRECT = "http://127.0.0.1:8888/callback"
SCOPE = "user-read-playback-state user-modify-playback-state"


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


def pkce_exchange(code: str, verifier: str) -> dict[str, str]:
    """The form a PKCE client posts to exchange its authorization code."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEMO_CLIENT_ID,
        "code_verifier": verifier,
    }


def pkce_login(emulator: SpotifyEmulator, http: requests.Session) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(emulator, http, code_challenge=challenge))["code"]
    form = pkce_exchange(code, verifier)
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
