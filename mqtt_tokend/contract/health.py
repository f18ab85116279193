"""The health model: its states, the record the agent publishes, and the exit codes a
monitor gives it (how it judges a record is `core.monitor_rules.judge`)."""

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
            "expires_at": _ms_rounded(self.expires_at),
            "last_refresh": _ms_rounded(self.last_refresh),
            "next_refresh": _ms_rounded(self.next_refresh),
            "consecutive_failures": self.consecutive_failures,
            "instructions": self.instructions,
            "checked_at": _ms_rounded(self.checked_at),
            "user": self.user,
            "reauth_by": _ms_rounded(self.reauth_by),
            "login_pending": self.login_topic is not None,
            "login_topic": self.login_topic,
            "player": self.player,
            "retry_after_until": _ms_rounded(self.retry_after_until),
            "version": __version__,
        }

    def to_json(self) -> str:
        """The payload as compact JSON."""
        return json.dumps(self.to_payload(), separators=(",", ":"))


def _ms_rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
