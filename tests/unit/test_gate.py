"""Rate limits and single flight, with times handed in: nothing here sleeps."""

from __future__ import annotations

import pytest

from mqtt_tokend.contract.wire import NotRefreshed
from mqtt_tokend.core.gate import RefreshGate, SingleFlight, Throttle
from mqtt_tokend.core.timing import Deadline


def test_throttle_passes_the_first_then_once_per_interval() -> None:
    throttle = Throttle(60.0)
    assert [throttle.allow(t) for t in (100.0, 100.0, 159.9)] == [True, False, False]
    assert throttle.allow(160.0) is True
    assert throttle.allow(219.0) is False


def test_single_flight_first_request_calls() -> None:
    assert SingleFlight(30.0).should_call(received=5.0, now=5.0) is True


def test_single_flight_answers_requests_that_arrived_before_the_call_ended() -> None:
    flight = SingleFlight(30.0)
    flight.done(ended=10.0)
    # 10,000 requests queued while the call ran: none of them costs another call.
    assert not any(flight.should_call(received=9.0 + i / 10_000, now=50.0) for i in range(10_000))


def test_single_flight_holds_later_requests_for_the_interval() -> None:
    flight = SingleFlight(30.0)
    flight.done(ended=10.0)
    assert flight.should_call(received=11.0, now=39.9) is False
    assert flight.should_call(received=11.0, now=40.0) is True


def test_refresh_gate_lets_a_rejected_current_token_through_once_per_token() -> None:
    gate = RefreshGate(min_interval=30)
    gate.attempted(started_wall=800.0, ended=100.0)  # the attempt before this token
    rejected = {"rejected_current": True, "token_issued_at": 900.0}
    assert gate.should_call(received=101.0, now=101.0, **rejected)  # within min_interval
    gate.attempted(started_wall=1001.0, ended=102.0, succeeded=False)
    # The refresh was tried after this token was issued: no second call for the same token.
    assert not gate.should_call(received=103.0, now=103.0, **rejected)


def test_refresh_gate_holds_everything_during_a_retry_after() -> None:
    gate = RefreshGate(min_interval=0)
    gate.hold(until=500.0)
    rejected = {"rejected_current": True, "token_issued_at": 0.0}
    assert not gate.should_call(received=10.0, now=499.9, **rejected)
    assert gate.should_call(received=10.0, now=500.0, **rejected)


CURRENT, OLD = "sha-of-the-current-token", "sha-of-an-older-token"


@pytest.mark.parametrize(
    ("received", "now", "rejected", "held"),
    [
        (150.0, 150.0, None, None),  # past min_interval: a plain request refreshes
        (101.0, 101.0, None, NotRefreshed.RATE_LIMITED),
        (101.0, 101.0, CURRENT, None),  # a rejected current token skips the rate limit
        (101.0, 101.0, OLD, NotRefreshed.NOT_CURRENT),
        (150.0, 150.0, OLD, None),  # past min_interval, an old hash is a plain request
        (99.0, 101.0, None, NotRefreshed.SINGLE_FLIGHT),
        (99.0, 101.0, OLD, NotRefreshed.NOT_CURRENT),
        (99.0, 101.0, CURRENT, NotRefreshed.SINGLE_FLIGHT),
    ],
    ids=[
        "plain-later",
        "plain-soon",
        "rejected-current",
        "rejected-old",
        "old-hash-later",
        "during-the-last-attempt",
        "old-hash-during-the-last-attempt",
        "current-during-the-last-attempt",
    ],
)
def test_the_gate_says_why_a_request_makes_no_call(
    received: float, now: float, rejected: str | None, held: NotRefreshed | None
) -> None:
    gate = RefreshGate(min_interval=30)
    gate.attempted(started_wall=1000.0, ended=100.0)  # a success, before the token was issued
    verdict = gate.verdict(
        received=received, rejected=rejected, current=CURRENT, token_issued_at=1001.0, now=now
    )
    assert (verdict.call, verdict.held) == (held is None, held)


@pytest.mark.parametrize(
    ("hold", "allowed_at"), [(None, 130.0), (500.0, 500.0)], ids=["rate-limit", "retry-after"]
)
def test_the_next_allowed_time_is_the_later_of_the_rate_limit_and_a_hold(
    hold: float | None, allowed_at: float
) -> None:
    gate = RefreshGate(min_interval=30)
    gate.attempted(started_wall=0.0, ended=100.0)
    if hold is not None:
        gate.hold(until=hold)
    outcome = gate.not_refreshed(
        gate.verdict(
            received=110.0, rejected=None, current=CURRENT, token_issued_at=0.0, now=110.0
        ),
        now=Deadline(monotonic=110.0, wall=2e9),
    )
    assert outcome.next_allowed_at == 2e9 + allowed_at - 110.0
    assert outcome.reason == (NotRefreshed.RETRY_AFTER if hold else NotRefreshed.RATE_LIMITED)
    assert gate.next_allowed(now=600.0) == 600.0
