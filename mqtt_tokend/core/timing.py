"""When to refresh, how long to back off, when Spotify ends a login and how long its
Retry-After holds: pure functions of the time they are given."""

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


DAY = 86400.0


def reauth_deadline(authorized_at: float | None, *, max_age_days: float) -> float | None:
    """When Spotify will end this login (refresh tokens die `max_age_days` after authorizing)."""
    return None if authorized_at is None else authorized_at + max_age_days * DAY


def reauth_warnings_due(
    now: float, reauth_by: float | None, *, warn_days: tuple[float, ...], sent: set[float]
) -> list[float]:
    """The warning thresholds (days before `reauth_by`) reached and not yet announced."""
    if reauth_by is None:
        return []
    return sorted(
        (days for days in warn_days if days not in sent and now >= reauth_by - days * DAY),
        reverse=True,
    )


# Spotify's Retry-After is honoured up to one hour. An access token lives an hour, so a longer
# wait would leave consumers without a token for longer than any refresh failure does, and a
# person reading health could not tell a rate limit from a dead agent. One refresh call an hour
# is still far below any rate Spotify limits; if the limit holds, the next 429 sets a new hour.
RETRY_AFTER_CAP = 3600.0


def retry_after_until(now: float, retry_after: float) -> float:
    """When a Retry-After of `retry_after` seconds (capped at RETRY_AFTER_CAP) ends."""
    return now + min(max(0.0, retry_after), RETRY_AFTER_CAP)


def retry_after_left(until: float | None, now: float) -> float | None:
    """Seconds still to wait for a Retry-After ending at `until` (kept across a restart).

    None once it has ended; a stored end further off than the cap (a clock set back, or a
    record from a version with a longer cap) is cut to the cap.
    """
    if until is None or until <= now:
        return None
    return min(until - now, RETRY_AFTER_CAP)
