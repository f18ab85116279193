"""The health model: states, the health record, and how a monitor judges it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from mqtt_tokend._version import __version__


class State(StrEnum):
    """Health `state` values, as the health topic documents them in topics/."""

    STARTING = "starting"
    OK = "ok"
    RETRYING = "retrying"
    DEGRADED = "degraded"
    AUTH_REQUIRED = "auth_required"
    ERROR = "error"


class ExitCode(IntEnum):
    """Nagios-style exit codes of `check`."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Health:
    """One health record; it never holds a secret."""

    state: State
    message: str
    checked_at: float
    expires_at: float | None = None
    last_refresh: float | None = None
    next_refresh: float | None = None
    consecutive_failures: int = 0
    instructions: str | None = None
    user: str | None = None
    reauth_by: float | None = None
    login_topic: str | None = None  # where the offered login's URL is, while one is
    player: dict[str, Any] | None = None
    retry_after_until: float | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JSON object published on `<base>/health` and written to the status file."""
        return {
            "state": self.state.value,
            "message": self.message,
            "expires_at": _seconds(self.expires_at),
            "last_refresh": _seconds(self.last_refresh),
            "next_refresh": _seconds(self.next_refresh),
            "consecutive_failures": self.consecutive_failures,
            "instructions": self.instructions,
            "checked_at": _seconds(self.checked_at),
            "user": self.user,
            "reauth_by": _seconds(self.reauth_by),
            "login_pending": self.login_topic is not None,
            "login_topic": self.login_topic,
            "player": self.player,
            "retry_after_until": _seconds(self.retry_after_until),
            "version": __version__,
        }

    def to_json(self) -> str:
        """The payload as compact JSON."""
        return json.dumps(self.to_payload(), separators=(",", ":"))


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def judge(
    health: dict[str, Any] | None, *, online: bool | None, now: float
) -> tuple[ExitCode, str]:
    """How a monitor rates a published health record: an exit code and one line why."""
    if health is None:
        return ExitCode.UNKNOWN, "no health record found: is the agent running?"
    state = health.get("state")
    expires_at = health.get("expires_at")
    message = str(health.get("message") or "")
    if online is False:
        return ExitCode.CRITICAL, "the agent is offline (its Last Will or a clean stop)"
    if state in (State.AUTH_REQUIRED, State.ERROR):
        return ExitCode.CRITICAL, f"{state}: {message}"
    if state == State.DEGRADED:
        # Degraded means the user token is gone by definition; consumers still get the app token.
        return ExitCode.WARNING, f"{state}: {message}"
    if not isinstance(expires_at, int | float) or expires_at <= now:
        return ExitCode.CRITICAL, f"{state}: no valid token ({message})"
    if state in (State.RETRYING, State.STARTING):
        return ExitCode.WARNING, f"{state}: {message}"
    if state == State.OK:
        return ExitCode.OK, f"ok: token valid for {int(expires_at - now)} s"
    return ExitCode.UNKNOWN, f"unknown state {state!r}"


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
