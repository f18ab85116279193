"""`mqtt-tokend run`: one agent per state directory (a second exits 75, which the units restart),
and a start on bad state files."""

from __future__ import annotations

import time
from pathlib import Path

from mqtt_tokend.adapters.lock import LOCK_FILE
from mqtt_tokend.adapters.store import SESSION_FILE, read_status
from mqtt_tokend.errors import EX_CONFIG, EX_TEMPFAIL
from tests.integration.conftest import AgentProcess, cli

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
AGENT_UNITS = ("lofi-pi-token-manager.service", "lofi-pi-token-manager@.service")


def service_settings(unit: str) -> dict[str, str]:
    """The [Service] keys of a shipped unit (the last value of a repeated key)."""
    settings, section = {}, ""
    for raw in (UNITS / unit).read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def wait_for_lock(state_dir: Path, pid: int) -> None:
    path, deadline = state_dir / LOCK_FILE, time.monotonic() + 15
    while not (path.exists() and path.read_text().strip() == str(pid)):
        assert time.monotonic() < deadline, f"the agent never took {path}"
        time.sleep(0.05)


def test_a_second_agent_exits_75_which_the_service_restarts(agent: AgentProcess) -> None:
    """Issue 16, item 9: a stray `sudo mqtt-tokend run` that holds the lock while the service
    restarts made the service's agent exit 78, which RestartPreventExitStatus=78 never restarts:
    the service stayed down for good. The lock held is temporary (75, EX_TEMPFAIL): the units
    restart it 10 s later, and only a configuration error (78) stays down."""
    assert agent.process is not None
    wait_for_lock(agent.config.parent / "state", agent.process.pid)
    second = cli(agent.config, "run", timeout=15)
    assert second.returncode == EX_TEMPFAIL, second.stderr
    for unit in AGENT_UNITS:
        settings = service_settings(unit)
        assert settings["Restart"] == "on-failure", unit
        prevented = {int(code) for code in settings["RestartPreventExitStatus"].split()}
        assert prevented == {EX_CONFIG}, unit
        assert second.returncode not in prevented, unit
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
