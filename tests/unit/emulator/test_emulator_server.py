"""The Spotify emulator as a server: its control endpoints and counters, HTTP framing and
robustness, keep-alive, quiet logs, its lifecycle and `python -m mqtt_tokend.dev.emulator`."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from http.client import HTTPConnection
from urllib.parse import urlsplit

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
from tests.unit.emulator.helpers import (
    REDIRECT,
    authorize,
    confidential_login,
    me,
    oauth_error,
    pkce_login,
    pkce_refresh,
    raw_request,
    redirect_params,
    token,
)

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
