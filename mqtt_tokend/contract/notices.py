"""What a person reads when they must act: the notice file and the alert events."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt_tokend.adapters.files import atomic_write
from mqtt_tokend.adapters.store import NOTICE_FILE

# Alert events on `<base>/alert` (and Home Assistant's event entity).
AUTH_REQUIRED = "auth_required"
RECOVERED = "recovered"
DEGRADED = "degraded"
REAUTH_SOON = "reauth_soon"
AGENT_DEAD = "agent_dead"
TOKEN_EXPIRED = "token_expired"
CLIENT_REJECTED = "client_rejected"
AUTH_FAILED = "auth_failed"  # a login pasted over MQTT was refused
ERROR = "error"  # the agent reports an error a retry has not cleared
EVENTS = (
    AUTH_REQUIRED,
    RECOVERED,
    DEGRADED,
    REAUTH_SOON,
    AGENT_DEAD,
    TOKEN_EXPIRED,
    CLIENT_REJECTED,
    AUTH_FAILED,
    ERROR,
)


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
            "event": self.event,
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


def write_notice(state_dir: Path, alert: Alert) -> Path:
    """Write (or replace) the notice; readable by the owner's group for a login banner."""
    path = state_dir / NOTICE_FILE
    atomic_write(path, notice_text(alert).encode(), mode=0o644)
    return path


def clear_notice(state_dir: Path) -> bool:
    """Remove the notice; True when there was one."""
    try:
        (state_dir / NOTICE_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def read_notice(state_dir: Path) -> str | None:
    """The notice's text, or None when nobody needs to act."""
    with contextlib.suppress(FileNotFoundError):
        return (state_dir / NOTICE_FILE).read_text()
    return None
