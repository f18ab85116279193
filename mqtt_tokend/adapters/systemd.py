"""systemd's notify protocol (sd_notify) without a dependency: READY, WATCHDOG and STATUS.

systemd passes `$NOTIFY_SOCKET` (a path, or an abstract name starting with '@') to a unit of
`Type=notify`, and `$WATCHDOG_USEC` when `WatchdogSec=` is set. Outside systemd both are
absent and every call here does nothing, so the agent runs the same by hand.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
from collections.abc import Mapping
from typing import TypeVar

_Item = TypeVar("_Item")

_LOG = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    """The socket address from $NOTIFY_SOCKET: '@name' is Linux's abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other forms: not for us


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send "KEY=value" fields to systemd; False when not under systemd or the send failed.

    Never raises: a lost notification must not stop the agent (systemd's watchdog will tell).
    """
    env = os.environ if environ is None else environ
    address = _address(env.get("NOTIFY_SOCKET", ""))
    if address is None or not fields:
        return False
    message = "\n".join(fields).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as err:
        _LOG.warning("cannot notify systemd (%s)", err.strerror or err)
        return False
    return True


def ready(status: str = "", *, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is up (READY=1), with an optional status line."""
    return notify("READY=1", *_status(status), environ=environ)


def watchdog(*, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the loop is alive (WATCHDOG=1); call at least every watchdog_interval()."""
    return notify("WATCHDOG=1", environ=environ)


def status(text: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """The one-line status `systemctl status` shows."""
    return notify(*_status(text), environ=environ)


def stopping(*, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is shutting down (STOPPING=1)."""
    return notify("STOPPING=1", environ=environ)


def _status(text: str) -> list[str]:
    line = " ".join(text.split())  # one line: a newline would start a new field
    return [f"STATUS={line}"] if line else []


def watchdog_interval(*, environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two WATCHDOG=1 pings (half of WatchdogSec=), or None when not asked.

    $WATCHDOG_PID, when set, names the process meant; another process (a child) ignores it.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
        return None
    return int(raw) / 1_000_000 / 2


class HeartbeatQueue(queue.Queue[_Item]):
    """The loop's inbox, pinging systemd's watchdog each time the loop comes round to it.

    A loop stuck in a step never calls `get` again, the pings stop, and systemd restarts the
    service after WatchdogSec=. A wait is cut to `interval`, so an idle loop still pings:
    `get` then raises queue.Empty earlier than asked, which a loop must treat as "nothing yet".
    """

    def __init__(self, interval: float, *, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.interval = interval
        self._environ = environ

    def get(self, block: bool = True, timeout: float | None = None) -> _Item:
        """Ping the watchdog, then wait for an item at most `interval` seconds."""
        watchdog(environ=self._environ)
        if block:
            timeout = self.interval if timeout is None else min(timeout, self.interval)
        return super().get(block, timeout)
