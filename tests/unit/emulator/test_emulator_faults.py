"""The Spotify emulator's injected faults, over real HTTP on loopback: status codes, rate limits,
garbage, truncated and dropped answers, delays, in order and until cleared."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from mqtt_tokend.dev.emulator import (
    SpotifyEmulator,
)
from tests.unit.emulator.helpers import (
    authorize,
    me,
    pkce_login,
    pkce_refresh,
    redirect_params,
    token,
)

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


def test_fault_trickle_sends_a_503_a_byte_at_a_time(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    emulator.inject("trickle", delay=0.001)
    response = token(emulator, http, {"grant_type": "client_credentials"})
    assert response.status_code == 503
    assert response.json()["error"] == "server_error"
    assert response.headers["Connection"] == "close"
