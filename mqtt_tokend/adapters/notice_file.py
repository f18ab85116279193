"""The notice file a person finds in the state directory when they must act."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mqtt_tokend.adapters.files import atomic_write
from mqtt_tokend.contract.notices import NOTICE_FILE, Alert, notice_text


def write_notice(state_dir: Path, alert: Alert) -> Path:
    """Write (or replace) the notice, 0600 whatever the umask (the agent's user reads it)."""
    path = state_dir / NOTICE_FILE
    atomic_write(path, notice_text(alert).encode(), mode=0o600)
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
