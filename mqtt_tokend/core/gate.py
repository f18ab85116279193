"""Rate limits and single flight for whatever a broker account can ask for; pure, no clock.

Every time is monotonic seconds handed in by the caller, so the unit tests never sleep.
"""

from __future__ import annotations

from dataclasses import dataclass

from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome
from mqtt_tokend.core.timing import Deadline


class Throttle:
    """At most one pass per `interval` seconds; the first call always passes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """True (and remembered) when `interval` has passed since the last pass."""
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class SingleFlight:
    """One costly call answers every request that arrived before it ended, and no call starts
    within `interval` seconds of the end of the last one: a burst of any size costs one call.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_end: float | None = None

    def should_call(self, *, received: float, now: float) -> bool:
        """True when a request that arrived at `received` justifies a call at `now`."""
        if self._last_end is None:
            return True
        if received <= self._last_end:
            return False  # the last call ended after it arrived: its result is the answer
        return now - self._last_end >= self.interval

    def done(self, *, ended: float) -> None:
        """Record the end of a call (successful or not)."""
        self._last_end = ended


class TokenBucket:
    """At most `burst` passes at once, then one more per `refill` seconds.

    A clock that steps back refills nothing; one that jumps ahead refills at most `burst`.
    """

    def __init__(self, *, burst: int, refill: float, now: float) -> None:
        self.burst = burst
        self.refill = refill
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        """True (and one pass spent) when a pass is left at `now`."""
        gained = max(0.0, now - self._at) / self.refill
        self._tokens = min(float(self.burst), self._tokens + gained)
        self._at = max(self._at, now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


REJECTED_WINDOW = 60.0  # seconds: at most one refresh a minute skips the rate limit


def requested_refreshes_bound(seconds: float, *, min_interval: float) -> int:
    """The most refresh calls requests of any kind can cause within `seconds` (Retry-After
    and failed attempts aside): one per `min_interval` after the last success, plus one
    rejected report per REJECTED_WINDOW, plus the first of each kind."""
    if min_interval <= 0:
        raise ValueError("without a min_interval, plain requests are not rate limited")
    return int(seconds // min_interval) + int(seconds // REJECTED_WINDOW) + 2


class RefreshGate:
    """Single flight and rate limit for refresh requests; times are monotonic seconds.

    A request that arrived before the last attempt ended is answered by that attempt. A plain
    request within `min_interval` of the last success gets the current token. A consumer whose
    current token was rejected gets one refresh at once, unless one was already tried for
    that token or a rejected report already skipped the rate limit within REJECTED_WINDOW
    seconds; otherwise its report counts as a plain request. So a player that reports every
    new token as rejected costs at most one extra refresh a minute, while a genuine 401 (a
    token no refresh has replaced for a minute) heals at once. Nothing reaches Spotify while
    a Retry-After hold is in force.
    """

    def __init__(self, *, min_interval: float) -> None:
        self._min_interval = min_interval
        self._last_end: float | None = None
        self._last_start_wall: float | None = None
        self._hold_until: float | None = None
        self._last_success: float | None = None
        self._last_rejected: float | None = None  # the last pass a rejected report earned

    def attempted(self, *, started_wall: float, ended: float, succeeded: bool = True) -> None:
        """Record a refresh attempt; only a success starts the `min_interval` again."""
        self._last_start_wall = started_wall
        self._last_end = ended
        if succeeded:
            self._last_success = ended

    def hold(self, *, until: float) -> None:
        """Spotify asked us to wait (Retry-After) until this monotonic time."""
        self._hold_until = until

    def should_call(
        self, *, received: float, rejected_current: bool, token_issued_at: float, now: float
    ) -> bool:
        """True when a request that arrived at `received` justifies a call to Spotify now.

        `rejected_current`: the consumer says Spotify refused the token that is current now.
        A pass earned by that report is remembered (the caller makes the call).
        """
        same = "the current token"  # only whether the reported hash is the current one matters
        verdict = self.verdict(
            received=received,
            rejected=same if rejected_current else None,
            current=same,
            token_issued_at=token_issued_at,
            now=now,
        )
        return verdict.call

    def verdict(
        self,
        *,
        received: float,
        rejected: str | None,
        current: str,
        token_issued_at: float,
        now: float,
    ) -> Verdict:
        """Whether a request calls Spotify now, and if not, why.

        `rejected`: the SHA-256 of the token the consumer says Spotify refused (None for a
        plain request); `current`: the current token's. A report about an older token is
        answered by the current one, whatever else holds the refresh back.
        """
        if self._last_end is not None and received <= self._last_end:
            held = NotRefreshed.SINGLE_FLIGHT
        elif self._hold_until is not None and now < self._hold_until:
            held = NotRefreshed.RETRY_AFTER
        elif self._allows(rejected_current=rejected == current, issued=token_issued_at, now=now):
            return Verdict(call=True)
        else:
            held = NotRefreshed.RATE_LIMITED
        if rejected is not None and rejected != current:
            held = NotRefreshed.NOT_CURRENT
        return Verdict(call=False, held=held)

    def _allows(self, *, rejected_current: bool, issued: float, now: float) -> bool:
        """Past the rate limit, or the first report that the current token was refused (no
        refresh was attempted since that token was issued, and no report skipped the rate
        limit within REJECTED_WINDOW)."""
        tried = self._last_start_wall is not None and self._last_start_wall > issued
        recent = self._last_rejected is not None and now - self._last_rejected < REJECTED_WINDOW
        if rejected_current and not tried and not recent:
            self._last_rejected = now
            return True
        return self._last_success is None or now - self._last_success >= self._min_interval

    def next_allowed(self, now: float) -> float:
        """The earliest monotonic time at which a plain refresh request calls Spotify."""
        allowed = [now]
        if self._hold_until is not None:
            allowed.append(self._hold_until)
        if self._last_success is not None:
            allowed.append(self._last_success + self._min_interval)
        return max(allowed)

    def not_refreshed(self, verdict: Verdict, *, now: Deadline) -> RefreshOutcome:
        """The outcome of a request that got no new token, with the next allowed wall time."""
        return RefreshOutcome(
            refreshed=False,
            reason=verdict.held or NotRefreshed.FAILED,
            next_allowed_at=now.wall + self.next_allowed(now.monotonic) - now.monotonic,
        )


@dataclass(frozen=True)
class Verdict:
    """The gate's answer to one refresh request."""

    call: bool
    held: NotRefreshed | None = None  # why no call is made
