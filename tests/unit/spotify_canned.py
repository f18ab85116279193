"""Canned Spotify answers through a custom requests adapter, and the cases tried on the client."""

from __future__ import annotations

import email.utils
import json
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.errors import AuthRejected, ClientRejected, SpotifyError, TransientError

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


def canned_response(answer: Canned, request: requests.PreparedRequest) -> requests.Response:
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
        return canned_response(answer, request)

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


def assert_no_secrets(error: BaseException) -> None:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [repr(value) for value in vars(error).values()]
    for text in texts:
        for known in KNOWN_SECRETS:
            assert known not in text, f"{known} leaked in {type(error).__name__}: {text}"
