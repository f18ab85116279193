"""README's fault table ("When things go wrong") is what a real agent says: each fault is run,
health, `status`, `check` and `health-check` are read, and the row built from them must be the
README's row. After a deliberate change, rewrite the rows with

    MQTT_TOKEND_UPDATE_FAULT_TABLE=1 .venv/bin/python -m pytest \
        tests/integration/test_fault_table.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import generate_key
from mqtt_tokend.adapters.store import STATUS_FILE
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import (
    SpotifyEmulator,
)
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.helpers import (
    make_confidential,
    mosquitto_pub,
    set_in_config,
    state_is,
)
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"
HEADER = (
    "| fault | what the agent does | health | `status` | `check` | `health-check` |\n"
    "|---|---|---|---|---|---|"
)


@dataclass(frozen=True)
class World:
    config: Path
    broker: PrivateMosquitto
    emulator: SpotifyEmulator
    topics: Topics


@dataclass(frozen=True)
class Fault:
    name: str
    does: str
    phrase: str  # in the health message while the fault lasts
    cause: Callable[[World], None]
    prepare: Callable[[Path], None] = lambda _config: None  # before the login
    after_login: Callable[[Path], None] = lambda _config: None  # before the agent starts
    at_start: bool = False  # the fault is there before the agent starts


def _refresh(world: World) -> None:
    mosquitto_pub(world.broker, world.topics.request("refresh"))


def _wrong_secret(config: Path) -> None:
    set_in_config(config, "client_secret", '"' + "0" * 32 + '"')


def _inject(kind: str, **options: float) -> Callable[[World], None]:
    def cause(world: World) -> None:
        world.emulator.inject(kind, endpoint="token", count=None, **options)  # type: ignore[arg-type]
        _refresh(world)

    return cause


def _revoke(world: World) -> None:
    world.emulator.revoke_all()
    _refresh(world)


def _stop_broker(world: World) -> None:
    world.broker.stop()


def _wrong_key(world: World) -> None:
    (world.config.parent / "fernet.key").write_bytes(generate_key() + b"\n")


FAULTS = [
    Fault(
        "Spotify answers 5xx to every refresh",
        "serves the current token while it is valid; retries with backoff up to `max_backoff`",
        "refresh failed",
        _inject("status", status=503),
    ),
    Fault(
        "Spotify trickles its answer (one byte every 0.5 s)",
        "cuts each call at `spotify.request_timeout` overall; serves the current token; retries",
        "refresh failed",
        _inject("trickle", delay=0.5),
    ),
    Fault(
        "429 with `Retry-After: 1000000000`",
        "waits at most an hour (`retry_after_until` in health, kept across a restart); every "
        "refresh, a rejected token's too, waits",
        "refresh failed",
        _inject("rate_limit", retry_after=1e9),
    ),
    Fault(
        "`invalid_client` (a wrong client secret)",
        "stops refreshing; names `spotify.client_id` / `spotify.client_secret` and the config",
        "spotify.client_id",
        _refresh,
        make_confidential,
        _wrong_secret,
    ),
    Fault(
        "`invalid_grant` (the login was revoked)",
        "tries the backup's refresh token once, then asks a person to log in (notice, alert, URL)",
        "Spotify ended this login",
        _revoke,
    ),
    Fault(
        "the MQTT broker cannot be reached",
        "keeps trying; after 10 s logs a WARNING and writes the error to its status file",
        "cannot reach the MQTT broker",
        _stop_broker,
    ),
    Fault(
        "the key file does not decrypt the stored login",
        "keeps the files; picks the login up as soon as the right key is put back",
        "Restore the key file",
        _wrong_key,
        at_start=True,
    ),
]


def _health(world: World, watcher: Watcher, phrase: str) -> dict[str, object]:
    """The health record that says the fault: on the broker, or in the status file."""
    status_file = world.config.parent / "state" / STATUS_FILE

    def says() -> dict[str, object] | None:
        if world.broker.running:
            records = [m.json() for m in watcher.on(world.topics.health) if m.payload]
        else:
            try:
                records = [json.loads(status_file.read_text())]
            except (OSError, ValueError):
                return None
        return next((r for r in reversed(records) if phrase in str(r["message"])), None)

    return wait_until(says, timeout=30, what=f"health to say {phrase!r}")


def _row(fault: Fault, world: World, watcher: Watcher) -> str:
    health = _health(world, watcher, fault.phrase)
    status = cli(world.config, "status", "--json", timeout=60)
    status_state = json.loads(status.stdout)["health"]["state"]
    check = cli(world.config, "check", timeout=60)
    monitor = cli(world.config, "health-check", timeout=60)
    cells = [
        fault.name,
        fault.does,
        f"`{health['state']}`: “{fault.phrase}…”",
        f"`{status_state}`",
        check.stdout.split(":")[0],
        f"{monitor.stdout.split(':')[0]} (exit {monitor.returncode})",
    ]
    return "| " + " | ".join(cells) + " |"


def _readme_rows() -> dict[str, str]:
    text = README.read_text()
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    rows = [line for line in table.strip().splitlines() if line.startswith("| ")][1:]
    return {line.split(" | ")[0][2:]: line for line in rows}


def _compare(row: str) -> None:
    name = row.split(" | ", maxsplit=1)[0][2:]
    if os.environ.get("MQTT_TOKEND_UPDATE_FAULT_TABLE"):
        text = README.read_text()
        old = _readme_rows().get(name)
        new = row + "\n" + END
        text = text.replace(END, new) if old is None else text.replace(old, row)
        README.write_text(text)
        return
    assert _readme_rows().get(name) == row, f"README's fault table drifted; this run says:\n{row}"


def test_the_table_lists_exactly_the_faults_run() -> None:
    names = {f.name for f in FAULTS}
    assert set(_readme_rows()) == names
    assert HEADER in README.read_text()
    assert not any(re.search(r"\|\s*\|", row) for row in _readme_rows().values())  # no blank


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_fault_as_the_readme_tells_it(
    fault: Fault,
    config_file: Path,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
    topics: Topics,
    watcher: Watcher,
) -> None:
    fault.prepare(config_file)
    assert login(config_file).returncode == 0
    fault.after_login(config_file)
    world = World(config_file, broker, emulator, topics)
    if fault.at_start:
        fault.cause(world)
    agent = AgentProcess(config_file).start()
    try:
        if not fault.at_start:
            watcher.wait_for(topics.health, state_is("ok"), timeout=20)
            fault.cause(world)
        _compare(_row(fault, world, watcher))
    finally:
        agent.stop()
        if not broker.running:
            broker.start()
