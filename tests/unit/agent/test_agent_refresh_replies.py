"""A refresh request that makes no new token: the reply says why and when the next is allowed."""

from __future__ import annotations

import pytest

from mqtt_tokend.contract.wire import token_sha256
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import TransientError
from tests.fakes import FakeClock, FakePublisher, FakeSpotify
from tests.unit.agent.helpers import TOPICS, health, request


def refresh_reply(agent: Agent, publisher: FakePublisher, item: Request) -> dict[str, object]:
    agent.step(item)
    data: dict[str, object] = publisher.last(TOPICS.response("refresh")).json()["data"]
    return data


STALE = {"reason": "rejected", "token_sha256": token_sha256("access-0")}


@pytest.mark.parametrize(
    ("failure", "body", "reason", "allowed_in"),
    [
        (None, None, "rate_limited", 20.0),
        (None, STALE, "not_current", 20.0),
        (TransientError("503", status=503), None, "failed", 20.0),
        (TransientError("429", status=429, retry_after=120), None, "failed", 120.0),
    ],
    ids=["rate-limited", "out-of-date-hash", "spotify-failed", "spotify-429"],
)
def test_a_refresh_not_made_says_why_and_when_the_next_is_allowed(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    failure: TransientError | None,
    body: dict[str, str] | None,
    reason: str,
    allowed_in: float,
) -> None:
    first = refresh_reply(agent, publisher, request(clock, "refresh"))  # access-1 is current
    assert first["refreshed"] is True and "reason" not in first
    clock.advance(10)
    if failure is not None:  # a rejected report of the current token passes the rate limit
        spotify.failures = [failure]
        body = {"reason": "rejected", "token_sha256": token_sha256("access-1")}
    data = refresh_reply(agent, publisher, request(clock, "refresh", body))
    assert data["refreshed"] is False and data["reason"] == reason
    assert data["next_allowed_at"] == pytest.approx(clock.wall() + allowed_in, abs=0.01)
    assert data["expires_at"] == health(publisher)["expires_at"]  # the current token's expiry
    if failure is not None and failure.retry_after is not None:  # then every request waits
        clock.advance(60)
        held = refresh_reply(agent, publisher, request(clock, "refresh", body))
        assert (held["reason"], held["next_allowed_at"]) == ("retry_after", data["next_allowed_at"])


def test_requests_a_refresh_answered_share_its_outcome_as_single_flight(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    first, second = request(clock, "refresh"), request(clock, "refresh")
    assert refresh_reply(agent, publisher, first)["refreshed"] is True
    data = refresh_reply(agent, publisher, second)
    assert (data["refreshed"], data["reason"]) == (False, "single_flight")
    assert len(spotify.refresh_calls) == 1
