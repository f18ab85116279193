"""Fuzzing the Spotify client: whatever comes back, a TokenGrant or one of the project's errors.

Answers come from a small `requests` adapter mounted on the session the client is given:
any status code, any headers (Retry-After and Location above all), any body. Redirects are
followed by `requests` itself, so a generated `Location` reaches its redirect handling too.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.errors import TokendError, TransientError
from tests.fuzz.profiles import budget
from tests.fuzz.strategies import deep_json, dumps, json_values, numbers

NOW = 1_800_000_000.0
ACCOUNTS = "https://accounts.fuzz"
API = "https://api.fuzz"
SECRET = "fuzz-CLIENT-SECRET-never-shown"
REFRESH = "fuzz-REFRESH-TOKEN-never-shown"
ACCESS = "fuzz-ACCESS-TOKEN-never-shown"
SECRETS = (SECRET, REFRESH, ACCESS)
CALLS = ("refresh", "client_credentials", "me", "devices")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class FuzzAdapter(BaseAdapter):
    """Answers each request with the next answer (the last one repeats), or raises it."""

    def __init__(self, answers: list[Answer | requests.RequestException]) -> None:
        super().__init__()
        self.answers = answers
        self.sent = 0

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        answer = self.answers[min(self.sent, len(self.answers) - 1)]
        self.sent += 1
        if isinstance(answer, BaseException):
            raise answer
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.reason = "fuzz"
        response._content = answer.body
        response._content_consumed = True  # type: ignore[attr-defined]
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


# ---- what may come back ----------------------------------------------------------------

# Header values as http.client hands them over: Latin-1 text, no line breaks, no NUL.
header_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\0"), max_size=40)
# Strings that sometimes carry a secret, as a misbehaving proxy echoing the request would.
body_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(SECRETS),
    st.sampled_from(SECRETS).map(lambda s: f"refused {s} because"),
)

http_dates = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31),
    timezones=st.none() | st.just(UTC),
).map(email.utils.format_datetime)
retry_after = st.one_of(
    header_text,
    st.integers().map(str),
    st.integers(min_value=10**20).map(str),
    st.floats().map(repr),
    st.sampled_from(
        ["NaN", "-nan", "inf", "-Infinity", "1e400", "-5", "0", " 7 ", "1_000", "0x10"]
    ),
    http_dates,
    http_dates.map(lambda d: d.replace("GMT", "+9999")),
)
locations = st.one_of(
    header_text,
    st.sampled_from(
        [
            f"{ACCOUNTS}:99999/api/token",
            f"{API}:0/v1/me",
            "http://[::1/x",
            "https://[zz]/",
            "//accounts.fuzz:-1/",
            "/api/token",
            f"{API}/v1/me?\xff\xfe",
        ]
    ),
    st.builds(lambda port: f"{API}:{port}/v1/me", header_text),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/json; charset=idna",
        "application/json; charset=base64",
        "application/json; charset=no-such-codec",
        "text/html; charset=latin-1",
        "text/plain",
    ]
) | header_text.map(lambda t: f"application/json; charset={t}")


def merged(known: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    return extra | known


headers = st.builds(
    merged,
    st.fixed_dictionaries(
        {},
        optional={"Retry-After": retry_after, "Location": locations, "Content-Type": content_types},
    ),
    st.dictionaries(header_text, header_text, max_size=3),
)

token_fields = st.fixed_dictionaries(
    {},
    optional={
        "access_token": body_text | json_values,
        "expires_in": numbers | body_text | json_values,
        "refresh_token": body_text | json_values,
        "scope": body_text | json_values,
        "token_type": body_text | json_values,
        "error": st.sampled_from(["invalid_grant", "invalid_client", "invalid_request"])
        | body_text
        | json_values
        | st.fixed_dictionaries({"status": numbers, "message": body_text | json_values}),
        "error_description": body_text | json_values,
        "devices": json_values | st.lists(st.dictionaries(body_text, json_values)),
        "id": body_text,
        "display_name": body_text,
    },
)

# Error bodies in the Accounts and the Web API forms, which the client reads into its messages.
error_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "error": st.sampled_from(["invalid_grant", "invalid_client", "invalid_request"])
            | body_text
        },
        optional={"error_description": body_text},
    ),
    st.fixed_dictionaries(
        {"error": st.fixed_dictionaries({"status": numbers, "message": body_text})}
    ),
)
garbage = st.one_of(
    st.binary(max_size=200),
    json_values.map(dumps),
    token_fields.map(lambda fields: dumps(fields)[: len(dumps(fields)) // 2]),  # truncated
    st.just(b"<!doctype html><title>Captive portal</title><p>Log in to the Wi-Fi</p>"),
)
deep = deep_json | deep_json.map(lambda nested: b'{"error": ' + nested + b"}")
bodies = st.one_of(error_bodies.map(dumps), token_fields.map(dumps), garbage, deep)

# Any status, but the ones with a meaning often: redirects make `requests` follow `Location`.
statuses = st.sampled_from([200, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 429, 500, 503])
answers = st.builds(Answer, statuses | st.integers(100, 599), headers, bodies)
failures = st.sampled_from(
    [
        requests.ConnectionError(f"refused, sent {SECRET}"),
        requests.Timeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
        requests.exceptions.ContentDecodingError("bad gzip"),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.InvalidHeader("bad header"),
    ]
)


def make_client(script: list[Answer | requests.RequestException], *, secret: str) -> SpotifyClient:
    adapter = FuzzAdapter(script)
    session = requests.Session()
    session.trust_env = False  # no proxies or ~/.netrc from the machine running the tests
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return SpotifyClient(
        client_id="fuzz-client",
        client_secret=secret,
        accounts_url=ACCOUNTS,
        api_url=API,
        session=session,
        clock=lambda: NOW,
    )


def call(client: SpotifyClient, name: str) -> Any:
    if name == "refresh":
        return client.refresh(REFRESH)
    if name == "client_credentials":
        return client.client_credentials()
    if name == "me":
        return client.me(ACCESS)
    return client.devices(ACCESS)


def held(name: str, secret: str) -> list[str]:
    """The secrets the client holds for this call (it cannot hide what it never knew)."""
    sent = {"refresh": REFRESH, "me": ACCESS, "devices": ACCESS}.get(name, "")
    return [s for s in (secret, sent) if s]


def check_error(err: TokendError, secrets: list[str]) -> None:
    """A clear message, no secret anywhere in it or its attributes, a usable Retry-After."""
    message = str(err)
    assert message.strip(), f"{type(err).__name__} without a message"
    texts = [message, repr(err), *(str(value) for value in vars(err).values())]
    for secret in secrets:
        assert not any(secret in text for text in texts), f"{type(err).__name__} shows a secret"
    if isinstance(err, TransientError) and err.retry_after is not None:
        assert isinstance(err.retry_after, float)
        assert math.isfinite(err.retry_after)
        assert err.retry_after >= 0


def check_result(name: str, result: Any) -> None:
    if name in ("refresh", "client_credentials"):
        assert isinstance(result, TokenGrant)
        assert isinstance(result.access_token, str)
        assert result.access_token
        assert isinstance(result.expires_in, float)
        assert math.isfinite(result.expires_in)
        assert result.expires_in > 0
        assert isinstance(result.scope, str)
        assert result.refresh_token is None or (
            isinstance(result.refresh_token, str) and result.refresh_token
        )
    elif name == "me":
        assert isinstance(result, dict)
    else:
        assert isinstance(result, list)
        assert all(isinstance(device, dict) for device in result)


@budget(200)
@given(
    name=st.sampled_from(CALLS),
    secret=st.sampled_from([SECRET, ""]),
    script=st.lists(answers | failures, min_size=1, max_size=3),
)
def test_any_answer_is_a_well_formed_result_or_a_project_error(
    name: str, secret: str, script: list[Answer | requests.RequestException]
) -> None:
    client = make_client(script, secret=secret)
    try:
        result = call(client, name)
    except TokendError as err:  # anything else escapes and fails the test
        check_error(err, held(name, secret))
    else:
        check_result(name, result)


@budget(200)
@given(
    name=st.sampled_from(CALLS),
    status=st.sampled_from([429, 500, 502, 503]),
    value=retry_after,
    body=bodies,
)
def test_retry_after_of_any_shape_becomes_none_or_a_finite_wait(
    name: str, status: int, value: str, body: bytes
) -> None:
    client = make_client([Answer(status, {"Retry-After": value}, body)], secret=SECRET)
    try:
        call(client, name)
    except TransientError as err:
        check_error(err, held(name, SECRET))
    else:
        raise AssertionError(f"{status} was taken for a success")


# Statuses whose body the client reads into its error (not 2xx, 429 or 5xx).
ERROR_STATUSES = [100, 301, 304, 400, 401, 403, 404, 409, 418, 499]


@budget(150)
@given(
    name=st.sampled_from(CALLS),
    secret=st.sampled_from([SECRET, ""]),
    status=st.sampled_from(ERROR_STATUSES),
    body=error_bodies,
)
def test_an_error_body_echoing_what_was_sent_never_passes_it_on(
    name: str, secret: str, status: int, body: dict[str, Any]
) -> None:
    client = make_client([Answer(status, {}, dumps(body))], secret=secret)
    try:
        call(client, name)
    except TokendError as err:
        check_error(err, held(name, secret))
    else:
        raise AssertionError(f"{status} was taken for a success")


@budget(60)
@given(
    name=st.sampled_from(CALLS),
    status=st.sampled_from([200, 400, 401, 429, 503]),
    depth=st.integers(900, 5000),
    inside_an_object=st.booleans(),
)
def test_a_body_nested_past_the_stack_is_garbage_not_a_crash(
    name: str, status: int, depth: int, inside_an_object: bool
) -> None:
    body = b"[" * depth + b"]" * depth
    if inside_an_object:
        body = b'{"error": ' + body + b"}"
    client = make_client(
        [Answer(status, {"Content-Type": "application/json"}, body)], secret=SECRET
    )
    try:
        result = call(client, name)
    except TokendError as err:
        check_error(err, held(name, SECRET))
    else:  # shallow enough for the parser: an answer like any other
        check_result(name, result)
