"""The state directory lock: one holder at a time, its pid named to the next."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mqtt_tokend.adapters.lock import LOCK_FILE, StateDirLock
from mqtt_tokend.errors import AgentRunning, ConfigError


def test_a_second_holder_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    first, second = StateDirLock(tmp_path), StateDirLock(tmp_path)
    first.acquire()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    with pytest.raises(AgentRunning, match=rf"another agent \(pid {os.getpid()}\) is running"):
        second.acquire()
    first.release()
    second.acquire()  # free once released
    second.release()


def test_a_stale_pid_from_a_dead_agent_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("999999999\n")
    lock = StateDirLock(tmp_path)
    lock.acquire()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    lock.release()


def test_an_unwritable_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open the lock file"):
        StateDirLock(tmp_path / "missing").acquire()


def test_the_lock_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        lock = StateDirLock(tmp_path)
        lock.acquire()
        lock.release()
    finally:
        os.umask(old)
    assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o600
