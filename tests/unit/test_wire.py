"""The wire format: availability, transactions and the token object read and written once."""

from __future__ import annotations

import json

import pytest

from mqtt_tokend.contract import wire
from mqtt_tokend.contract.wire import Token, TokenKind


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b"online", True),
        (b"offline", False),
        (None, None),
        (b"", None),
        (b"ONLINE", None),
        (b"online\n", None),
        (b"\xff\xfe", None),
        (b'{"state": "ok"}', None),
    ],
    ids=["online", "offline", "absent", "empty", "upper-case", "newline", "not-utf8", "json"],
)
def test_availability_is_unknown_unless_it_is_one_of_the_agents_two_words(
    payload: bytes | None, online: bool | None
) -> None:
    # A garbled availability was written by someone else: it is not evidence of a dead agent.
    assert wire.availability(payload) is online


def test_an_answer_is_matched_by_its_transaction_only() -> None:
    mine = wire.new_transaction()
    assert mine != wire.new_transaction()
    body = wire.response_payload(ok=True, data={"x": 1}, transaction=mine)
    payload = json.dumps(body).encode()
    assert wire.answer_to(payload, mine) == body
    assert wire.answer_to(payload, wire.new_transaction()) is None
    for garbled in (None, b"", b"[1]", b"not json", b"\xff", b"[" * 100_000):
        assert wire.answer_to(garbled, mine) is None


def test_a_request_body_carries_its_transaction() -> None:
    body = wire.parse_request(wire.request_body("t-1", reason="key rotated").encode())
    assert body == {"transaction": "t-1", "reason": "key rotated"}


def test_a_token_travels_as_the_object_the_agent_encrypts() -> None:
    plain = wire.token_plaintext(
        access_token="zq9", scope="s", expires_at=200.5, issued_at=100.25, kind=TokenKind.APP
    )
    assert json.loads(json.dumps(plain)) == plain  # plain JSON: a str kind, not an enum repr
    assert plain["kind"] == "app"
    token = Token.from_plaintext(plain)
    assert token.plaintext() == plain
    assert list(token.plaintext()) == list(plain)  # `get-token --json` keeps its key order


def test_the_rejected_request_names_the_reason_and_the_token() -> None:
    body = wire.rejected_request("zq9", transaction="t")
    assert body == {
        "reason": "rejected",
        "token_sha256": wire.token_sha256("zq9"),
        "transaction": "t",
    }
    assert body["reason"] == wire.Reason.REJECTED


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"Infinity", b"NaN"])
def test_a_non_finite_number_is_refused_not_echoed(number: bytes) -> None:
    """1e400 is valid JSON but parses to inf, which json.dumps would echo as `Infinity`."""
    with pytest.raises(wire.RequestError, match="not JSON"):
        wire.parse_request(b'{"transaction": ' + number + b"}")
