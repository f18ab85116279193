"""What a person reads when they must act: the notice file and the alert events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

NOTICE_FILE = "auth_failure_notice.txt"  # in the state directory; adapters.notice_file writes it


class AlertEvent(StrEnum):
    """The events on `<base>/alert` (and Home Assistant's event entity); each one is sent."""

    AUTH_REQUIRED = "auth_required"
    RECOVERED = "recovered"
    REAUTH_SOON = "reauth_soon"
    AGENT_DEAD = "agent_dead"  # by `health-check`, while the agent is offline or stuck
    TOKEN_EXPIRED = "token_expired"
    CLIENT_REJECTED = "client_rejected"
    AUTH_FAILED = "auth_failed"  # a login pasted over MQTT was refused
    ERROR = "error"  # the agent reports an error a retry has not cleared
    BROKER_UNREACHABLE = "broker_unreachable"  # by `health-check`: no consumer can get a token
    BROKER_REFUSED = "broker_refused"  # by `health-check`: the broker refused its password


AUTH_REQUIRED = AlertEvent.AUTH_REQUIRED
RECOVERED = AlertEvent.RECOVERED
REAUTH_SOON = AlertEvent.REAUTH_SOON
AGENT_DEAD = AlertEvent.AGENT_DEAD
TOKEN_EXPIRED = AlertEvent.TOKEN_EXPIRED
CLIENT_REJECTED = AlertEvent.CLIENT_REJECTED
AUTH_FAILED = AlertEvent.AUTH_FAILED
ERROR = AlertEvent.ERROR
BROKER_UNREACHABLE = AlertEvent.BROKER_UNREACHABLE
BROKER_REFUSED = AlertEvent.BROKER_REFUSED
EVENTS = tuple(event.value for event in AlertEvent)  # plain strings, for templates and schemas


@dataclass(frozen=True)
class Alert:
    """One event a person should hear about; never holds a secret."""

    event: str
    message: str
    at: float
    instructions: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JSON object published on `<base>/alert`."""
        return {
            "event": str(self.event),
            "message": self.message,
            "instructions": self.instructions,
            "at": round(self.at, 3),
        }


def notice_text(alert: Alert) -> str:
    """The text of auth_failure_notice.txt."""
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(alert.at))
    lines = [
        "mqtt-tokend needs you",
        "=====================",
        "",
        f"What happened: {alert.message}",
        f"When:          {when}",
        "",
        "What to do:",
        f"  {alert.instructions or 'see `mqtt-tokend status`'}",
        "",
        "This file disappears by itself once the problem is fixed.",
    ]
    return "\n".join(lines) + "\n"
