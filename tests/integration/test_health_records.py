"""Every health record a live agent publishes over a real Mosquitto, through the states a Pi
goes through, carries exactly the fields of topics/schemas/health.json (which refuses any
other): logged out, logged in, Spotify failing, Spotify's Retry-After, and the clean stop, with
the local player answering its zeroconf URL or not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.contract import SCHEMAS
from tests.integration.conftest import AgentProcess, login
from tests.integration.helpers import mosquitto_pub, state_is
from tests.integration.watch import Watcher

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds: each state shows within a second or two on loopback


class Zeroconf(BaseHTTPRequestHandler):
    """A local Spotify Connect player's `?action=getInfo`, as librespot answers it."""

    def do_GET(self) -> None:
        body = json.dumps({"activeUser": "listener", "remoteName": "LoFi Pi"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        """Quiet: the test reads the agent's record, not this log."""


@pytest.fixture(params=[True, False], ids=["player-answers", "player-unreachable"])
def reachable(request: pytest.FixtureRequest) -> bool:
    """Whether the local player answers its zeroconf URL."""
    return bool(request.param)


@pytest.fixture
def player_url(reachable: bool) -> Iterator[str]:
    """The player's zeroconf URL: a server that answers, or a port nothing listens on."""
    if not reachable:
        yield f"http://127.0.0.1:{free_port()}/"
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), Zeroconf)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def extra_config(player_url: str) -> str:
    return f'\n[player]\nzeroconf_url = "{player_url}"\n'


def test_live_health_records_carry_exactly_the_schemas_fields(
    config_file: Path,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
    watcher: Watcher,
    base_topic: str,
    reachable: bool,
) -> None:
    topic = f"{base_topic}/health"
    agent = AgentProcess(config_file).start()
    try:
        watcher.wait_for(topic, state_is("auth_required"), timeout=WAIT)
        assert login(config_file).returncode == 0
        watcher.wait_for(topic, state_is("ok"), timeout=WAIT)
        emulator.inject("status", endpoint="token", count=None, status=503)
        mosquitto_pub(broker, f"{base_topic}/request/refresh")
        watcher.wait_for(topic, state_is("retrying"), timeout=WAIT)
        emulator.clear_faults()
        emulator.inject("rate_limit", endpoint="token", count=None, retry_after=600)
        mosquitto_pub(broker, f"{base_topic}/request/refresh")
        watcher.wait_for(topic, lambda m: held(m.json()), timeout=WAIT)
    finally:
        agent.stop()
    watcher.wait_for(topic, lambda m: m.json()["message"] == "agent stopped", timeout=WAIT)

    records = [m.json() for m in watcher.on(topic) if m.payload]
    validator = Draft7Validator(json.loads((SCHEMAS / "health.json").read_text()))
    fields = list(json.loads((SCHEMAS / "health.json").read_text())["properties"])
    for record in records:
        assert list(record) == fields
        assert not [e.message for e in validator.iter_errors(record)], record
    assert {"auth_required", "ok", "retrying"} <= {r["state"] for r in records}
    assert any(r["login_pending"] for r in records) and any(held(r) for r in records)
    players = [r["player"] for r in records if r["player"] is not None]
    assert players, "no record carried the local player"
    expected = {"reachable": True, "active_user": True, "name": "LoFi Pi"}
    assert all(p == expected if reachable else not p["reachable"] and p["error"] for p in players)


def held(record: dict[str, Any]) -> bool:
    """A record written while Spotify's Retry-After holds."""
    return record["retry_after_until"] is not None
