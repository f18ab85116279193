"""One agent per state directory: an exclusive `flock` on a lock file that holds the pid.

Two agents on one state directory would rotate the same refresh token, share one MQTT client
id (the state directory keeps it) and publish over each other. The kernel drops the lock when
the process ends, however it ends (kill -9 included), so a stale lock file never blocks a
start. A held lock is temporary (exit 75, which systemd restarts), never a configuration error
(78, which it does not).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from mqtt_tokend.errors import AgentRunning, ConfigError

LOCK_FILE = "agent.lock"


class StateDirLock:
    """The lock on one state directory, held from `acquire` until `release` (or exit)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"StateDirLock({str(self.path)!r}, held={self._fd is not None})"

    def acquire(self) -> None:
        """Take the lock at once, or raise AgentRunning naming the agent that holds it
        (ConfigError when the lock file cannot be opened: the state directory is wrong)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise ConfigError(f"cannot open the lock file {self.path} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "pid unknown"
            raise AgentRunning(
                f"another agent ({who}) is running for this state directory "
                f"({self.path.parent}): stop it first, or give this agent its own "
                "agent.state_dir and mqtt.base_topic"
            ) from None
        except OSError as err:
            os.close(fd)
            raise ConfigError(f"cannot lock {self.path} ({err.strerror})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let another agent start (the file stays: removing it would race a new holder)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote, or None when it has not written one (yet)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
