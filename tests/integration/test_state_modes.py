"""Every state file is private whatever the umask (issue 16, item 5): `auth`, the agent and
`health-check` run as real subprocesses under umask 022, the one a login shell has. On main
`health-check` created health_check_state.json, token_health.log and auth_failure_notice.txt
as 0644."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters.store import HEALTH_LOG_FILE, STATUS_FILE, read_status
from mqtt_tokend.cli.monitor import MEMORY_FILE
from mqtt_tokend.contract.notices import NOTICE_FILE
from mqtt_tokend.dev.devbroker import free_port
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.test_broker_security import with_mqtt
from tests.integration.watch import wait_until

# The status file is 0640 on purpose (the agent's group may read its state); every other one
# is the agent's user's alone.
MODES = {STATUS_FILE: 0o640}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The subprocesses started in the test inherit umask 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_state_file_is_private_under_umask_022(
    config_file: Path, umask_022: None, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    assert login(config_file).returncode == 0
    agent = AgentProcess(config_file).start()
    try:
        wait_until(
            lambda: (read_status(state) or {}).get("state") == "ok",
            timeout=30,
            what="the agent's ok status file",
        )
    finally:
        agent.stop()
    down = with_mqtt(config_file, "broker-down", port=free_port())  # nothing listens there
    monitor = cli(down, "health-check", "--timeout", "3")
    assert monitor.returncode == 2, monitor.stdout + monitor.stderr
    files = {path.name: path for path in state.iterdir() if path.is_file()}
    assert {MEMORY_FILE, HEALTH_LOG_FILE, NOTICE_FILE, STATUS_FILE} <= set(files)
    modes = {name: oct(path.stat().st_mode & 0o777) for name, path in files.items()}
    expected = {name: oct(MODES.get(name, 0o600)) for name in files}
    assert modes == expected, sorted(files)
    assert len(files) >= 8, sorted(files)  # tokens, session, client id, lock, log, ...
