"""When to refresh and how long to wait: pure functions, a seeded Random and a fake clock."""

from __future__ import annotations

import random

import pytest

from mqtt_tokend.core.timing import Deadline, backoff_delay, refresh_at, retry_delay
from tests.fakes import FakeClock

T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("lifetime", "early", "lead"),
    [
        (3600.0, 600.0, 600.0),
        (3600.0, 0.0, 0.0),
        (3600.0, 1800.0, 1800.0),
        (3600.0, 3000.0, 1800.0),
        (600.0, 600.0, 300.0),
        (60.0, 600.0, 30.0),
        (0.0, 600.0, 0.0),
    ],
    ids=[
        "spotify-hour-default-lead",
        "no-lead-refresh-at-expiry",
        "lead-exactly-half",
        "lead-capped-at-half-the-lifetime",
        "ten-minute-token-refreshed-at-half",
        "one-minute-token-not-a-refresh-loop",
        "zero-lifetime",
    ],
)
def test_refresh_at_leads_expiry_by_early_capped_at_half_lifetime(
    lifetime: float, early: float, lead: float
) -> None:
    expires_at = T0 + lifetime
    assert refresh_at(expires_at=expires_at, issued_at=T0, early=early) == expires_at - lead


def test_refresh_at_never_before_issue_when_issued_at_is_after_expiry() -> None:
    # A clock that jumped backwards between grant and expiry must not give a time in the past
    # of the grant: the lifetime is treated as zero, so the refresh happens at expiry.
    assert refresh_at(expires_at=T0, issued_at=T0 + 100, early=600) == T0


@pytest.mark.parametrize("attempt", range(21), ids=lambda a: f"attempt-{a}")
def test_backoff_delay_full_jitter_within_bounds(attempt: int) -> None:
    rng = random.Random(attempt)
    cap = 300.0
    ceiling = min(cap, 2.0**attempt)
    delays = [backoff_delay(attempt, cap=cap, rng=rng) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) <= cap


def test_backoff_delay_respects_cap_for_huge_attempts() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, cap=45.0, rng=rng) for attempt in (30, 100, 1000, 10**6)]
    assert all(0.0 <= d <= 45.0 for d in delays)


def test_backoff_delay_grows_with_attempts() -> None:
    rng = random.Random(3)
    early = max(backoff_delay(0, cap=300, rng=rng) for _ in range(200))
    late = max(backoff_delay(8, cap=300, rng=rng) for _ in range(200))
    assert early <= 1.0
    assert late > 100.0


def test_backoff_delay_is_deterministic_with_a_seeded_random() -> None:
    first = [backoff_delay(a, cap=300, rng=random.Random(42)) for a in range(10)]
    second = [backoff_delay(a, cap=300, rng=random.Random(42)) for a in range(10)]
    assert first == second


def test_backoff_delay_spreads_retries_of_many_clients() -> None:
    # Full jitter exists so that a fleet of Pis does not retry in lockstep.
    rng = random.Random(1)
    delays = [backoff_delay(6, cap=300, rng=rng) for _ in range(100)]
    assert len(set(delays)) > 90
    assert min(delays) < 16.0 < max(delays)


@pytest.mark.parametrize("attempt", [0, 3, 10, 20], ids=lambda a: f"attempt-{a}")
@pytest.mark.parametrize("retry_after", [0.0, 5.0, 120.0, 7200.0], ids=lambda r: f"ra-{r:g}")
def test_retry_delay_never_below_retry_after(attempt: int, retry_after: float) -> None:
    rng = random.Random(attempt)
    for _ in range(50):
        delay = retry_delay(attempt, cap=300, rng=rng, retry_after=retry_after)
        assert delay >= retry_after
        assert delay <= max(300.0, retry_after)


def test_retry_delay_hours_long_retry_after_beats_the_cap() -> None:
    delay = retry_delay(0, cap=300, rng=random.Random(0), retry_after=3 * 3600)
    assert delay == 3 * 3600


def test_retry_delay_without_retry_after_is_the_backoff() -> None:
    assert retry_delay(5, cap=300, rng=random.Random(9), retry_after=None) == backoff_delay(
        5, cap=300, rng=random.Random(9)
    )


def test_deadline_after_counts_down_and_never_goes_negative(clock: FakeClock) -> None:
    deadline = Deadline.after(10.0, clock)
    assert deadline.remaining(clock) == 10.0
    clock.advance(4.0)
    assert deadline.remaining(clock) == 6.0
    clock.advance(6.0)
    assert deadline.remaining(clock) == 0.0
    clock.advance(1000.0)
    assert deadline.remaining(clock) == 0.0


def test_deadline_in_the_past_is_due_now(clock: FakeClock) -> None:
    assert Deadline.after(-5.0, clock).remaining(clock) == 0.0
    assert Deadline.at_wall(clock.wall() - 3600, clock).remaining(clock) == 0.0


def test_deadline_at_wall_keeps_its_wait_across_a_wall_clock_jump(clock: FakeClock) -> None:
    # A Pi has no RTC: NTP moves the wall clock at boot. A deadline already set must keep
    # counting on the monotonic clock, not fire early (or years late) because of the jump.
    target = clock.wall() + 600
    deadline = Deadline.at_wall(target, clock)
    clock.advance(100)
    clock.jump_wall(+86400 * 365)
    assert deadline.remaining(clock) == 500.0
    clock.jump_wall(-86400 * 730)
    assert deadline.remaining(clock) == 500.0
    assert deadline.wall == target


def test_deadline_at_wall_after_a_jump_uses_the_new_wall_time(clock: FakeClock) -> None:
    # A deadline computed after the jump measures from the corrected wall clock.
    expires_at = clock.wall() + 3600
    clock.jump_wall(+1800)
    deadline = Deadline.at_wall(expires_at, clock)
    assert deadline.remaining(clock) == 1800.0
    assert deadline.wall == expires_at
