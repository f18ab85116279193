"""When to refresh and how long to back off: pure functions of the time they are given."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Protocol

BACKOFF_BASE = 1.0
# Never refresh sooner than this after a grant, whatever the configured lead time says:
# a token lifetime shorter than refresh_early_seconds must not become a refresh loop.
MIN_LIFETIME_FRACTION = 0.5


class Clock(Protocol):
    """Wall time for expiries, monotonic time for waiting."""

    def wall(self) -> float:
        """Unix seconds."""

    def monotonic(self) -> float:
        """Seconds that never jump."""


class SystemClock:
    """The real clocks."""

    def wall(self) -> float:
        """Unix seconds from the system clock."""
        return time.time()

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()


def refresh_at(*, expires_at: float, issued_at: float, early: float) -> float:
    """Wall time at which to refresh a token: `early` seconds before expiry.

    The lead is capped at half the token's lifetime so that a short-lived token is still
    used for a while before it is refreshed.
    """
    lifetime = max(0.0, expires_at - issued_at)
    lead = min(early, lifetime * MIN_LIFETIME_FRACTION)
    return expires_at - lead


def backoff_delay(
    attempt: int, *, cap: float, rng: random.Random, base: float = BACKOFF_BASE
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    `attempt` counts from 0 for the first retry.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt, 62))
    return rng.uniform(0.0, ceiling)


def retry_delay(
    attempt: int, *, cap: float, rng: random.Random, retry_after: float | None
) -> float:
    """The wait before the next attempt: the backoff, but never less than Retry-After."""
    delay = backoff_delay(attempt, cap=cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True)
class Deadline:
    """A point in time kept on the monotonic clock, remembered with its wall-clock twin."""

    monotonic: float
    wall: float

    @classmethod
    def at_wall(cls, wall: float, clock: Clock) -> Deadline:
        """The deadline for a wall-clock instant, as seen from now."""
        return cls(monotonic=clock.monotonic() + (wall - clock.wall()), wall=wall)

    @classmethod
    def after(cls, seconds: float, clock: Clock) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(monotonic=clock.monotonic() + seconds, wall=clock.wall() + seconds)

    def remaining(self, clock: Clock) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.monotonic - clock.monotonic())
