"""`mqtt-tokend run`: one agent per state directory (exit 78), and a start on bad state files."""

from __future__ import annotations

import time
from pathlib import Path

from mqtt_tokend.adapters.lock import LOCK_FILE
from mqtt_tokend.adapters.store import SESSION_FILE, read_status
from mqtt_tokend.errors import EX_CONFIG
from tests.integration.conftest import AgentProcess, cli


def wait_for_lock(state_dir: Path, pid: int) -> None:
    path, deadline = state_dir / LOCK_FILE, time.monotonic() + 15
    while not (path.exists() and path.read_text().strip() == str(pid)):
        assert time.monotonic() < deadline, f"the agent never took {path}"
        time.sleep(0.05)


def test_a_second_agent_on_the_same_state_directory_exits_78(agent: AgentProcess) -> None:
    assert agent.process is not None
    wait_for_lock(agent.config.parent / "state", agent.process.pid)
    second = cli(agent.config, "run", timeout=15)
    assert second.returncode == EX_CONFIG, second.stderr
    assert (
        f"another agent (pid {agent.process.pid}) is running for this state directory"
        in second.stderr
    )
    assert agent.process.poll() is None, "the first agent keeps running"


def test_the_lock_is_free_again_after_the_first_agent_is_killed(agent: AgentProcess) -> None:
    assert agent.process is not None
    wait_for_lock(agent.config.parent / "state", agent.process.pid)
    agent.kill9()  # the lock file stays; the kernel's lock does not
    successor = AgentProcess(agent.config).start()
    try:
        assert successor.process is not None
        wait_for_lock(agent.config.parent / "state", successor.process.pid)
    finally:
        successor.stop()


def test_a_wrong_shaped_session_file_does_not_stop_the_agent(logged_in: Path) -> None:
    """Issue 12, item 8: `{"reauth_warned": 5}` crashed the start with a TypeError."""
    state = logged_in.parent / "state"
    (state / SESSION_FILE).write_text('{"reauth_warned": 5}')
    agent = AgentProcess(logged_in).start()
    try:
        deadline = time.monotonic() + 20
        while (read_status(state) or {}).get("state") != "ok":
            assert agent.process is not None and agent.process.poll() is None, agent.output()
            assert time.monotonic() < deadline, agent.output()
            time.sleep(0.1)
        assert (state / f"{SESSION_FILE}.corrupt").exists()
        assert "is not a session record (reauth_warned is int)" in agent.output()
    finally:
        agent.stop()
