"""The consumers of docs/consumers.md (Python, shell, Node), each run as a subprocess against
a Mosquitto started from the shipped deploy/mosquitto/ files, as the `lofi-player` account,
with a logged-in agent and the emulator: a token Spotify accepts, a rejected report that heals,
a refresh reply that says why it made no new token (every reply fits `topics/`), and a key
rotation that retires the old key.

CI sets MQTT_TOKEND_NODE_MODULES (`.ci/run` runs scripts/node_deps.sh); by hand the Node
cases install the npm packages the same way, and skip only where node is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.contract import Contract
from tests.deploy.conftest import REPO, Broker, stop_broker
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.helpers import me_status
from tests.integration.hostile import (
    BASE,
    OBSERVER,
    Client,
    agent_config,
    have_mosquitto,
    shipped_broker,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_mosquitto(), reason="Mosquitto is not installed"),
]

EXAMPLES = REPO / "docs" / "examples"
PLAYER = "lofi-player"
RUN_TIMEOUT = 60  # seconds; each run takes well under one on loopback


@dataclass(frozen=True)
class Setup:
    """The shipped broker, the emulator, a logged-in agent on them, and the key file."""

    broker: Broker
    emulator: SpotifyEmulator
    config: Path  # the agent's

    @property
    def key_file(self) -> Path:
        return self.config.parent / "fernet.key"


@dataclass(frozen=True)
class Place:
    """The shipped broker and the emulator, shared by the cases."""

    broker: Broker
    emulator: SpotifyEmulator


@pytest.fixture(scope="module")
def place() -> Iterator[Place]:
    directory = Path(tempfile.mkdtemp(prefix="mqtt-tokend-examples-"))
    directory.chmod(0o755)  # Mosquitto reads its files after dropping root
    broker = shipped_broker(directory / "broker")
    try:
        with SpotifyEmulator() as emulator:
            yield Place(broker, emulator)
    finally:
        stop_broker(broker)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def setup(place: Place, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A freshly logged-in agent for each case: a rejected report skips the rate limit at most
    once a minute per agent (the README's bound), so cases must not share one."""
    observer = Client(place.broker, OBSERVER).connect()
    observer.subscribe(f"{BASE}/health")
    config = agent_config(tmp_path_factory.mktemp("agent"), place.broker, place.emulator)
    assert login(config).returncode == 0
    started = time.time()
    agent = AgentProcess(config).start()
    try:
        # This agent's own `ok` (its token is retained before it), not the one before it left.
        observer.wait(
            lambda: any(
                json.loads(payload).get("state") == "ok"
                and json.loads(payload).get("checked_at", 0) >= int(started)
                for payload in observer.on(f"{BASE}/health")
            ),
            "this agent's ok health record",
        )
        yield Setup(place.broker, place.emulator, config)
    finally:
        agent.stop()
        observer.close()
        # The next case's agent has a key of its own: leave it no token of this one's.
        cleaner = Client(place.broker, "mqtt-tokend").connect()
        for topic in (f"{BASE}/token", f"{BASE}/token/app", f"{BASE}/health"):
            cleaner.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(RUN_TIMEOUT)
        cleaner.close()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The Node example's npm packages, installed outside the checkout."""
    given = os.environ.get("MQTT_TOKEND_NODE_MODULES")
    if given:
        assert Path(given, "mqtt").is_dir(), f"MQTT_TOKEND_NODE_MODULES={given} has no mqtt"
        return Path(given)
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (CI installs them: .ci/run)")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "node_deps.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.splitlines()[-1])


def command(language: str, work: Path, request: pytest.FixtureRequest) -> list[str]:
    """How to run the example in `language`; the Node one beside its node_modules."""
    if language == "python":
        return [sys.executable, str(EXAMPLES / "consumer.py")]
    if language == "shell":
        missing = [t for t in ("mosquitto_rr", "openssl", "jq") if shutil.which(t) is None]
        assert not missing, (
            f"the shell example needs {missing} (scripts/bootstrap.sh installs them)"
        )
        return ["bash", str(EXAMPLES / "consumer.sh")]
    modules: Path = request.getfixturevalue("node_modules")
    shutil.copyfile(EXAMPLES / "consumer.mjs", work / "consumer.mjs")
    (work / "node_modules").symlink_to(modules)
    return ["node", str(work / "consumer.mjs")]


def run(setup: Setup, example: list[str], mode: str, protocol: int) -> list[str]:
    """The example in `mode`, as the player's broker account; its output lines."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "TOKEND_"))},
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": str(setup.broker.port),
        "MQTT_USERNAME": PLAYER,
        "MQTT_PASSWORD": setup.broker.passwords[PLAYER],
        "MQTT_PROTOCOL": str(protocol),
        "TOKEND_BASE": BASE,
        "TOKEND_KEY_FILE": str(setup.key_file),
    }
    result = subprocess.run(
        [*example, mode], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{mode}: {result.stderr}"
    return result.stdout.splitlines()


def reply_problems(reply: dict[str, object]) -> list[str]:
    payload = json.dumps(reply).encode()
    return Contract.load().problems(BASE, f"{BASE}/response/refresh/x", payload)


CASES = [("python", 5), ("python", 3), ("shell", 5), ("node", 5), ("node", 3)]


@pytest.mark.parametrize(
    ("language", "protocol"), CASES, ids=[f"{lang}-mqtt{v}" for lang, v in CASES]
)
def test_the_example_consumer_gets_a_token_heals_a_401_and_reads_why_not(
    setup: Setup, language: str, protocol: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    example = command(language, tmp_path, request)
    [token] = run(setup, example, "token", protocol)
    assert me_status(setup.emulator, token) == 200

    refreshed, new = run(setup, example, "rejected", protocol)
    assert json.loads(refreshed) is True
    assert new != token and me_status(setup.emulator, new) == 200
    assert run(setup, example, "token", protocol) == [new]

    [line] = run(setup, example, "refresh", protocol)  # right after a refresh: rate limited
    reply = json.loads(line)
    assert reply["status"] == "ok" and not reply_problems(reply)
    data = reply["data"]
    assert (data["refreshed"], data["reason"]) == (False, "rate_limited")
    assert data["next_allowed_at"] > data["last_refresh"] and data["state"] == "ok"

    # A new key, the old ones retired: the example reads the key file again and goes on.
    assert cli(setup.config, "rotate-key", "--keep", "1").returncode == 0
    assert len(setup.key_file.read_text().split()) == 1
    assert run(setup, example, "token", protocol) == [new]
