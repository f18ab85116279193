"""Rate limits and single flight for whatever a broker account can ask for; pure, no clock.

Every time is monotonic seconds handed in by the caller, so the unit tests never sleep.
"""

from __future__ import annotations


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
