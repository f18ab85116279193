"""Rate limits and single flight, with times handed in: nothing here sleeps."""

from __future__ import annotations

import pytest

from mqtt_tokend.contract.wire import NotRefreshed
from mqtt_tokend.core.gate import (
    RefreshGate,
    SingleFlight,
    Throttle,
    TokenBucket,
    requested_refreshes_bound,
)
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


def test_token_bucket_passes_a_burst_then_one_per_refill() -> None:
    bucket = TokenBucket(burst=3, refill=10.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [True, True, True, False, False]
    assert bucket.take(9.9) is False
    assert bucket.take(10.0) is True
    assert bucket.take(10.0) is False


def test_token_bucket_gains_nothing_from_a_clock_stepping_back() -> None:
    bucket = TokenBucket(burst=1, refill=10.0, now=100.0)
    assert bucket.take(100.0)
    assert not bucket.take(50.0)  # the clock stepped back 50 s
    assert not bucket.take(109.0)
    assert bucket.take(110.0)


def _adversary(
    gate: RefreshGate, *, seconds: float, every: float, rejected: bool = True
) -> list[float]:
    """A player that reports the current token as rejected (or asks for a plain refresh)
    `every` seconds, each arriving after the last call ended; every call succeeds at once
    and issues a new token. The times of the calls."""
    calls: list[float] = []
    issued = -3600.0  # the token in use when the flood starts is an hour old
    now = 0.0
    while now < seconds:
        if gate.should_call(
            received=now, rejected_current=rejected, token_issued_at=issued, now=now
        ):
            gate.attempted(started_wall=now, ended=now)
            issued = now
            calls.append(now)
        now += every
    return calls


@pytest.mark.parametrize("every", [0.01, 0.5, 5.0, 29.0, 31.0], ids=lambda e: f"every-{e}s")
def test_rejected_reports_of_each_fresh_token_stay_within_the_documented_bound(
    every: float,
) -> None:
    """Issue 17: 300 reports made 300 refreshes. Now at most one report a minute skips the
    rate limit, so any minute holds at most 3 calls with the default 30 s."""
    calls = _adversary(RefreshGate(min_interval=30), seconds=600.0, every=every)
    assert len(calls) <= requested_refreshes_bound(600.0, min_interval=30)
    assert max(sum(1 for c in calls if t <= c < t + 60) for t in calls) <= 3
    assert calls[0] == 0.0  # the first report heals at once


def test_a_plain_flood_costs_one_call_per_min_interval() -> None:
    calls = _adversary(RefreshGate(min_interval=30), seconds=600.0, every=0.5, rejected=False)
    assert len(calls) == 20


def test_a_genuine_401_heals_at_once_once_the_window_has_passed() -> None:
    gate = RefreshGate(min_interval=30)
    fresh = {"rejected_current": True, "token_issued_at": 1000.0}
    assert gate.should_call(received=0.0, now=0.0, **fresh)
    gate.attempted(started_wall=1000.0, ended=0.5)  # token issued at wall 1000.5
    fresh = {"rejected_current": True, "token_issued_at": 1000.5}
    assert not gate.should_call(received=10.0, now=10.0, **fresh)  # a fresh token, again
    assert gate.should_call(received=60.0, now=60.0, **fresh)  # a minute on: at once


def test_the_documented_bound_needs_a_rate_limit() -> None:
    assert requested_refreshes_bound(60.0, min_interval=30) == 5
    with pytest.raises(ValueError, match="not rate limited"):
        requested_refreshes_bound(60.0, min_interval=0)
