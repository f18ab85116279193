"""The Spotify client without a network: canned answers through a custom requests adapter."""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from mqtt_tokend.adapters.spotify import SpotifyClient, _classify, parse_retry_after
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

NOW = 1_800_000_000.0
ACCOUNTS = "https://accounts.test"
API = "https://api.test"
CLIENT_ID = "client-id-123"
# Known strings that must never surface in a repr or an exception message.
SECRET = "CLIENT-SECRET-do-not-leak"
REFRESH = "REFRESH-TOKEN-do-not-leak"
ACCESS = "ACCESS-TOKEN-do-not-leak"
NEW_REFRESH = "NEW-REFRESH-do-not-leak"
CODE = "AUTH-CODE-do-not-leak"
VERIFIER = "PKCE-VERIFIER-do-not-leak"
KNOWN_SECRETS = (SECRET, REFRESH, ACCESS, NEW_REFRESH, CODE, VERIFIER)


@dataclass(frozen=True)
class Canned:
    """One HTTP answer."""

    status: int
    body: bytes | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] | None = None


Answer = Canned | BaseException


def _response(answer: Canned, request: requests.PreparedRequest) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    body = answer.body
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    headers = dict(answer.headers or {})
    if isinstance(answer.body, dict | list):
        headers.setdefault("Content-Type", "application/json")
    response.headers = CaseInsensitiveDict(headers)
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    response.url = request.url or ""
    response.request = request
    return response


class CannedAdapter(BaseAdapter):
    """Answers every request with the next canned answer (the last one repeats)."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__()
        self.answers = list(answers)
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return _response(answer, request)

    def close(self) -> None:
        pass

    def form(self, index: int = -1) -> dict[str, str]:
        body = self.requests[index].body
        text = body.decode() if isinstance(body, bytes) else str(body or "")
        return {k: v[0] for k, v in parse_qs(text).items()}


def make_client(
    *answers: Answer, secret: str = "", timeout: float = 7.5
) -> tuple[SpotifyClient, CannedAdapter]:
    adapter = CannedAdapter(*answers)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    client = SpotifyClient(
        client_id=CLIENT_ID,
        client_secret=secret,
        accounts_url=ACCOUNTS,
        api_url=API,
        timeout=timeout,
        session=session,
        clock=lambda: NOW,
    )
    return client, adapter


def good_token(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": ACCESS,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "user-read-playback-state",
    }
    body.update(extra)
    return body


def web_api_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


HTTP_DATE_IN_2_MIN = email.utils.formatdate(NOW + 120, usegmt=True)
CAPTIVE_PORTAL = b"<html><body><h1>Hotel WiFi</h1><form>Log in to continue</form></body></html>"

# (answer, expected exception type or None for a grant, expected retry_after)
TOKEN_CASES: list[tuple[Answer, type[BaseException] | None, float | None]] = [
    (Canned(200, good_token(refresh_token=NEW_REFRESH)), None, None),
    (Canned(200, good_token()), None, None),
    (Canned(200, b"this is not json at all"), TransientError, None),
    (Canned(200, b"\xff\xfe\x00\x01\x89PNG garbage \x00"), TransientError, None),
    (Canned(200, b'{"access_token": "' + ACCESS.encode() + b'", "expi'), TransientError, None),
    (Canned(200, [good_token()]), TransientError, None),
    (Canned(200, b"null"), TransientError, None),
    (Canned(200, b""), TransientError, None),
    (Canned(200, {"access_token": ACCESS, "scope": "x"}), TransientError, None),
    (Canned(200, {"expires_in": 3600}), TransientError, None),
    (Canned(200, good_token(expires_in=0)), TransientError, None),
    (Canned(200, good_token(expires_in=-5)), TransientError, None),
    (Canned(200, good_token(expires_in="abc")), TransientError, None),
    (Canned(200, good_token(expires_in=None)), TransientError, None),
    (Canned(200, good_token(access_token="")), TransientError, None),
    (Canned(200, good_token(access_token=12345)), TransientError, None),
    (Canned(429, {"error": "rate"}, {"Retry-After": "30"}), TransientError, 30.0),
    (Canned(429, b"", {"Retry-After": "7200"}), TransientError, 3600.0),  # capped at an hour
    (Canned(429, b"", {"Retry-After": HTTP_DATE_IN_2_MIN}), TransientError, 120.0),
    (Canned(429, b""), TransientError, None),
    (Canned(429, b"", {"Retry-After": "soon-ish"}), TransientError, None),
    (Canned(429, b"", {"Retry-After": "inf"}), TransientError, None),
    (Canned(500, b"Internal Server Error"), TransientError, None),
    (Canned(502, b"<html>Bad Gateway</html>"), TransientError, None),
    (Canned(503, {"error": "server_error"}), TransientError, None),
    (
        Canned(400, {"error": "invalid_grant", "error_description": "Refresh token revoked"}),
        AuthRejected,
        None,
    ),
    (
        Canned(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}),
        AuthRejected,
        None,
    ),
    (
        Canned(400, {"error": "invalid_client", "error_description": "Invalid client"}),
        ClientRejected,
        None,
    ),
    (
        Canned(401, {"error": "invalid_client", "error_description": "Invalid client secret"}),
        ClientRejected,
        None,
    ),
    (
        Canned(400, {"error": "unsupported_grant_type", "error_description": "grant_type bad"}),
        SpotifyError,
        None,
    ),
    (Canned(403, {"error": "access_denied"}), SpotifyError, None),
    (Canned(400, CAPTIVE_PORTAL, {"Content-Type": "text/html"}), TransientError, None),
    (requests.ConnectionError("Connection refused"), TransientError, None),
    (requests.Timeout("read timed out"), TransientError, None),
    (requests.ConnectTimeout("connect timed out"), TransientError, None),
    (requests.exceptions.ChunkedEncodingError("connection broken"), TransientError, None),
    (requests.exceptions.SSLError("certificate verify failed"), TransientError, None),
]
TOKEN_IDS = [
    "200-good-with-new-refresh-token",
    "200-good-without-refresh-token",
    "200-garbage-text",
    "200-binary-garbage",
    "200-truncated-json",
    "200-json-array",
    "200-json-null",
    "200-empty-body",
    "200-missing-expires_in",
    "200-missing-access_token",
    "200-expires_in-0",
    "200-expires_in-negative",
    "200-expires_in-abc",
    "200-expires_in-null",
    "200-empty-access_token",
    "200-numeric-access_token",
    "429-retry-after-seconds",
    "429-retry-after-hours",
    "429-retry-after-http-date",
    "429-no-retry-after",
    "429-garbage-retry-after",
    "429-infinite-retry-after",
    "500",
    "502-html",
    "503-json",
    "400-invalid_grant-revoked",
    "400-invalid_grant-invalid",
    "400-invalid_client",
    "401-invalid_client",
    "400-unsupported_grant_type",
    "403",
    "400-html-captive-portal",
    "connection-refused",
    "timeout",
    "connect-timeout",
    "chunked-encoding-broken",
    "tls-error",
]


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
    _assert_no_secrets(error)


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
    _assert_no_secrets(caught.value)


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
    _assert_no_secrets(caught.value)


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


# Every answer that fails, made with the known strings in the request and in the bodies.
FAILURES: list[Answer] = [answer for answer, expected, _ in TOKEN_CASES if expected is not None] + [
    Canned(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}),
    Canned(200, {"access_token": ACCESS, "expires_in": "abc", "refresh_token": NEW_REFRESH}),
    Canned(200, {"access_token": ACCESS, "refresh_token": NEW_REFRESH}),
]


@pytest.mark.parametrize("secret", ["", SECRET], ids=["pkce", "confidential"])
def test_no_exception_message_holds_a_secret(secret: str) -> None:
    calls: list[Callable[[SpotifyClient], object]] = [
        lambda c: c.refresh(REFRESH),
        lambda c: c.exchange_code(
            code=CODE, redirect_uri="http://127.0.0.1:1/cb", code_verifier=VERIFIER
        ),
        lambda c: c.me(ACCESS),
        lambda c: c.devices(ACCESS),
    ]
    raised = 0
    for answer in FAILURES:
        for call in calls:
            client, _ = make_client(answer, secret=secret)
            try:
                call(client)
            except TokendError as error:
                raised += 1
                _assert_no_secrets(error)
    assert raised >= len(FAILURES) * 3


def _assert_no_secrets(error: BaseException) -> None:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [repr(value) for value in vars(error).values()]
    for text in texts:
        for known in KNOWN_SECRETS:
            assert known not in text, f"{known} leaked in {type(error).__name__}: {text}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("45", 45.0),
        (" 12 ", 12.0),
        ("2.5", 2.5),
        ("-10", 0.0),
        ("nan", None),
        ("inf", None),
        ("tomorrow", None),
        (HTTP_DATE_IN_2_MIN, 120.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("1000000000", 3600.0),
        (email.utils.formatdate(NOW + 5 * 86400, usegmt=True), 3600.0),
    ],
    ids=[
        "absent",
        "empty",
        "zero",
        "seconds",
        "padded",
        "fractional",
        "negative-clamped",
        "nan",
        "inf",
        "garbage",
        "http-date-future",
        "http-date-past",
        "huge-capped-at-an-hour",
        "date-days-away-capped-at-an-hour",
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_classify_returns_body_of_a_success() -> None:
    request = requests.Request("GET", f"{API}/v1/me").prepare()
    response = _response(Canned(200, {"id": "alice"}), request)
    assert _classify(response, what="GET /v1/me", now=NOW, web_api=True) == {"id": "alice"}


def test_classify_401_on_token_endpoint_is_not_an_access_token_rejection() -> None:
    # Only the Web API's 401 means "refresh the access token"; a 401 from the Accounts
    # service without invalid_client is some other refusal.
    request = requests.Request("POST", f"{ACCOUNTS}/api/token").prepare()
    response = _response(Canned(401, {"error": "unauthorized_client"}), request)
    with pytest.raises(SpotifyError) as caught:
        _classify(response, what="refresh", now=NOW, web_api=False)
    assert type(caught.value) is SpotifyError
    assert caught.value.status == 401


# -- the overall deadline, against the emulator over real HTTP -------------------------------


@pytest.mark.parametrize("endpoint", ["token", "me"])
def test_a_trickling_answer_fails_within_the_deadline(endpoint: str) -> None:
    """One byte every 0.3 s passes a 1 s per-read timeout for a minute; the call gives up at 1 s."""
    from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator

    outcome: list[BaseException | dict[str, Any] | TokenGrant] = []
    done = threading.Event()
    with SpotifyEmulator() as emulator:
        emulator.inject("trickle", endpoint=endpoint, delay=0.3)
        client = SpotifyClient(
            client_id=DEMO_CLIENT_ID,
            accounts_url=emulator.url,
            api_url=emulator.url,
            timeout=1.0,
        )

        def call() -> None:
            try:
                if endpoint == "token":
                    outcome.append(client.refresh("any-refresh-token"))
                else:
                    outcome.append(client.me("any-access-token"))
            except BaseException as err:  # handed to the test thread
                outcome.append(err)
            finally:
                done.set()

        threading.Thread(target=call, daemon=True).start()
        # The whole trickled 503 takes over a minute; the deadline ends the call at 1 s.
        assert done.wait(10), "the call was still reading the trickle after 10 s"
        client.close()
    assert isinstance(outcome[0], TransientError)
    assert "within 1 s" in str(outcome[0])
