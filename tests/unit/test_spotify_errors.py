"""The Spotify client's failures: no secret in any message, Retry-After read within bounds, and
an overall deadline against a trickling emulator."""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from mqtt_tokend.adapters.spotify import SpotifyClient, _classify, parse_retry_after
from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.errors import SpotifyError, TokendError, TransientError
from tests.unit.spotify_canned import (
    ACCESS,
    ACCOUNTS,
    API,
    CODE,
    HTTP_DATE_IN_2_MIN,
    NEW_REFRESH,
    NOW,
    REFRESH,
    SECRET,
    TOKEN_CASES,
    VERIFIER,
    Answer,
    Canned,
    assert_no_secrets,
    canned_response,
    make_client,
)

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
                assert_no_secrets(error)
    assert raised >= len(FAILURES) * 3


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
    response = canned_response(Canned(200, {"id": "alice"}), request)
    assert _classify(response, what="GET /v1/me", now=NOW, web_api=True) == {"id": "alice"}


def test_classify_401_on_token_endpoint_is_not_an_access_token_rejection() -> None:
    # Only the Web API's 401 means "refresh the access token"; a 401 from the Accounts
    # service without invalid_client is some other refusal.
    request = requests.Request("POST", f"{ACCOUNTS}/api/token").prepare()
    response = canned_response(Canned(401, {"error": "unauthorized_client"}), request)
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
