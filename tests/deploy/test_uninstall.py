"""Uninstall and purge in any order and any number of steps, on staged installs whose Mosquitto
really runs: afterwards no retained message of the agent (token, health, availability, devices,
login, discovery) is left on the broker, the broker's own files are as they were before the
install, and nothing of ours is left in the tree. A broker that is down stops the purge with the
reason and the command that finishes it; a broker restart that fails rolls back every file."""

from __future__ import annotations

import subprocess

import pytest

from mqtt_tokend.contract.homeassistant import removal_messages
from tests.deploy import debian_broker
from tests.deploy.conftest import Peer, run_installer
from tests.deploy.debian_broker import HA_ACL, HA_LOCAL, HA_USERS, Staged, add_users
from tests.deploy.staged_install import (
    BASE,
    agent_traces,
    connected,
    leave_agent_traces,
    rebase_config,
    retained,
)

staged = debian_broker.staged  # the fixture: a staged machine whose broker runs
DISCOVERY = [t for t, _p in removal_messages(base_topic=BASE, discovery_prefix="homeassistant")]
FOREIGN = "zigbee2mqtt/kitchen/temperature"  # the house's retained message: it must stay
SEQUENCES = {
    "uninstall-then-purge": [["--uninstall"], ["--uninstall", "--purge"]],
    "purge-directly": [["--purge"]],
    "purge-twice": [["--purge"], ["--purge"]],
    "uninstall-twice-then-purge": [["--uninstall"], ["--uninstall"], ["--purge"]],
}
LAYOUTS = ["stock-debian", "lock-down", "home-assistant-broker"]


def owner(layout: str) -> tuple[str | None, str | None]:
    """The broker's own principal that reads everything once we are gone."""
    return (
        ("homeassistant", HA_USERS["homeassistant"])
        if layout == "home-assistant-broker"
        else (None, None)
    )


def prepare(staged: Staged, layout: str) -> dict[str, bytes]:
    """The household's broker before the install; returns its files."""
    if layout == "home-assistant-broker":
        etc = staged.root / "etc/mosquitto"
        (etc / "conf.d/local.conf").write_text(HA_LOCAL)
        (etc / "acl").write_text(HA_ACL)
        add_users(staged, HA_USERS)
    staged.start()
    house = connected(staged.port, *owner(layout))
    house.publish(FOREIGN, b"21.5", retain=True)
    house.close()
    return staged.broker_files()


def options(layout: str) -> list[str]:
    """The installer's options for a layout: Home Assistant's own account where it has one."""
    if layout == "lock-down":
        return ["--lock-down-broker"]
    return ["--ha-user", "homeassistant"] if layout == "home-assistant-broker" else []


def install(staged: Staged, layout: str) -> None:
    staged.install(*options(layout))
    rebase_config(staged.root / "etc/mqtt-tokend/config.toml", staged.root, staged.port)
    leave_agent_traces(staged.port, staged.credentials()["mqtt-tokend"], DISCOVERY)


def after_uninstall(staged: Staged, passwords: dict[str, str]) -> None:
    """After a plain --uninstall: the broker users are still there, the agent's messages not."""
    agent = connected(staged.port, "mqtt-tokend", passwords["mqtt-tokend"])
    # Home Assistant's account: ours, or the household's own where it had one already.
    ha = connected(
        staged.port, "homeassistant", passwords.get("homeassistant", HA_USERS["homeassistant"])
    )
    try:
        assert agent_traces(retained(agent, f"{BASE}/#", f"{BASE}/test-barrier")) == []
        assert agent_traces(retained(ha, "homeassistant/#", "homeassistant/status")) == []
    finally:
        agent.close()
        ha.close()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("steps", SEQUENCES.values(), ids=list(SEQUENCES))
def test_every_order_of_uninstall_and_purge_leaves_no_trace(
    staged: Staged, layout: str, steps: list[list[str]]
) -> None:
    before = prepare(staged, layout)
    install(staged, layout)
    passwords = staged.credentials()
    for number, args in enumerate(steps):
        result = staged.install(*args)
        cleared = "removed 6 retained messages under lofi/spotify/ and the Home Assistant device"
        assert (cleared in result.stdout) == (number == 0), result.stdout
        if "--purge" not in args:
            after_uninstall(staged, passwords)
    assert "purged mqtt-tokend" in result.stdout

    staged.start()  # the broker as the host's would run after the purge
    reader: Peer = connected(staged.port, *owner(layout))
    try:
        # Home Assistant's own account writes zigbee2mqtt/#, the anonymous reader anything.
        barrier = "zigbee2mqtt/barrier" if layout == "home-assistant-broker" else "barrier"
        left = retained(reader, "#", barrier)
    finally:
        reader.close()
    assert FOREIGN in left, "the reader sees everything, and the house's messages stay"
    assert agent_traces(left) == []
    assert staged.broker_files() == before, "the broker's files are as before the install"
    ours = [str(p.relative_to(staged.root)) for p in staged.root.rglob("*") if p.is_file()]
    assert [p for p in ours if not p.startswith("etc/mosquitto/")] == []


def test_a_purge_with_the_broker_down_keeps_what_finishes_it(staged: Staged) -> None:
    before = prepare(staged, "stock-debian")
    install(staged, "stock-debian")
    staged.stop()
    down = run_installer(
        staged.snapshot, staged.root, "--broker-restart", "true", "--purge", check=False
    )
    assert down.returncode == 1
    assert "could not clear the broker: cannot reach the broker at 127.0.0.1:" in down.stderr
    assert "then run the same command again" in down.stdout
    assert (staged.root / "etc/mqtt-tokend/config.toml").exists(), "kept to finish later"
    assert (staged.root / "etc/mosquitto/mqtt-tokend/passwd").exists(), "the agent logs in later"

    staged.start()
    again = staged.install("--purge")
    assert "removed 6 retained messages under lofi/spotify/" in again.stdout
    reader = connected(staged.port, None)
    try:
        assert agent_traces(retained(reader, "#")) == []
    finally:
        reader.close()
    assert staged.broker_files() == before


def test_leaving_the_retained_messages_is_a_choice_that_is_said(staged: Staged) -> None:
    prepare(staged, "stock-debian")
    install(staged, "stock-debian")
    staged.stop()
    result = run_installer(
        staged.snapshot, staged.root, "--broker-restart", "true", "--purge", check=False
    )
    printed = next(
        line.split("leave them there: ", 1)[1]
        for line in result.stdout.splitlines()
        if "leave them there: " in line
    )
    assert printed.startswith("MQTT_TOKEND_KEEP_RETAINED=1 ")
    finish = subprocess.run(
        ["bash", "-c", printed], capture_output=True, text=True, timeout=60, check=False
    )
    assert finish.returncode == 0, finish.stdout + finish.stderr
    assert "left the agent's retained messages on the broker" in finish.stdout
    assert not (staged.root / "etc/mqtt-tokend").exists()


@pytest.mark.parametrize("layout", ["stock-debian", "home-assistant-broker"])
def test_a_failed_broker_restart_leaves_no_file_of_ours(staged: Staged, layout: str) -> None:
    """The restart fails whenever our conf.d file is present: the rollback puts back the
    broker's files and removes everything the step added (credentials, added-users, our
    directory), so the broker's tree is byte for byte what it was."""
    before = prepare(staged, layout)
    etc = staged.root / "etc/mosquitto"
    failing = f"test ! -e {etc}/conf.d/mqtt-tokend.conf && {staged.restart}"
    result = run_installer(
        staged.snapshot,
        staged.root,
        "--no-venv",
        "--broker-restart",
        failing,
        *options(layout),
        check=False,
    )
    assert result.returncode != 0
    assert "putting the previous files back" in result.stdout
    assert staged.broker_files() == before
    assert not (etc / "mqtt-tokend").exists()
