"""Why a refresh request did not refresh, in the words of the health record it comes with,
so that `refresh` never contradicts `status`."""

from __future__ import annotations

import time
from typing import Any


def _at(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "an unknown time"
    return time.strftime("%H:%M:%S UTC", time.gmtime(stamp))


def not_refreshed(health: dict[str, Any], *, now: float) -> str | None:
    """The reason a refresh was not made, when it is not simply "the token is fresh".

    `now` is wall time on the agent's clock.
    """
    until = health.get("retry_after_until")
    if isinstance(until, int | float) and until > now:
        return (
            f"not refreshed: Spotify asked the agent to wait (Retry-After) until {_at(until)}; "
            "every refresh, a rejected token's too, waits until then"
        )
    failures = health.get("consecutive_failures")
    if isinstance(failures, int) and failures > 0:
        return (
            f"not refreshed: retrying, {failures} failed attempt(s) ({health.get('message')}); "
            f"next attempt at {_at(health.get('next_refresh'))}"
        )
    if health.get("state") == "error":
        return f"not refreshed: {health.get('message')}"
    return None
