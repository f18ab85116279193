"""A household on a broker started from the shipped Mosquitto files: the agent, two consumers of
the player's user, Home Assistant watching availability, and a stream of CLI commands and health
checks beside them. It counts every session another one ended, four ways: the broker's log, the
agent's log, the consumers' own disconnect warnings, and `offline` on availability.

Used by tests/deploy/test_sessions.py and by bench/sessions.py (which prints the figures)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mqtt_tokend.config import load_config
from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator
from tests.deploy.conftest import (
    AGENT_PASSWORD,
    PLAYER_PASSWORD,
    WAIT,
    Broker,
    Peer,
    free_port,
    start_broker,
    stop_broker,
)
from tests.integration.conftest import CLI, AgentProcess, login, toml_value, write_agent_config
from tests.integration.watch import wait_until

BASE = "lofi/spotify"
KICK = "already connected, closing old connection"  # Mosquitto's log line for a taken session
RECONNECTING = "; reconnecting"  # MqttLink's warning when the broker dropped a live session
CLI_TIMEOUT = 60.0
MIX = ("status", "check", "get-token", "refresh")  # the CLI commands, in turn


def secret_file(path: Path, text: str) -> Path:
    """A password file as the installer writes it (0600)."""
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def logged_in_config(
    home: Path, *, port: int, emulator: SpotifyEmulator, protocol: int = 5
) -> Path:
    """The agent's config as installed (user mqtt-tokend, its password in a 0600 file), after
    a successful `auth`."""
    home.mkdir(parents=True)
    config = write_agent_config(
        home,
        emulator_url=emulator.url,
        mqtt={
            "port": port,
            "username": "mqtt-tokend",
            "password_file": secret_file(home / "mqtt_password", AGENT_PASSWORD),
            "keepalive": 5,
            "protocol": protocol,
        },
        redirect_uri=f"http://127.0.0.1:{free_port()}/callback",
    )
    result = login(config)
    assert result.returncode == 0, result.stderr
    return config


def player_config(directory: Path, *, port: int, key_file: Path, protocol: int = 5) -> Path:
    """The player's config: its own broker user, the agent's key file."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secret_file(directory / "mqtt_password", PLAYER_PASSWORD)
    values = {
        "spotify": {"client_id": DEMO_CLIENT_ID},
        "mqtt": {
            "port": port,
            "username": "lofi-player",
            "password_file": password,
            "protocol": protocol,
        },
        "agent": {"state_dir": directory / "state", "key_file": key_file},
    }
    path = directory / "config.toml"
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
            for name, table in values.items()
        )
    )
    path.chmod(0o600)
    return path


class _Counter(logging.Handler):
    """Counts the consumers' `...; reconnecting` warnings (their on_disconnect)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if RECONNECTING in record.getMessage():
            self.count += 1


@dataclass
class Household:
    """Everything running; `tally()` counts the disconnections so far."""

    broker: Broker
    agent: AgentProcess
    agent_config: Path
    player_config: Path
    watcher: Peer
    consumers: list[TokenConsumer]
    counter: _Counter
    failures: list[str] = field(default_factory=list)
    ran: int = 0

    def offline(self) -> int:
        """How many times availability went `offline` after the agent came online."""
        payloads = self.watcher.payloads(f"{BASE}/availability")
        first = payloads.index(b"online") if b"online" in payloads else len(payloads)
        return payloads[first:].count(b"offline")

    def tally(self) -> dict[str, int]:
        """The disconnections seen so far, each way of seeing them, and the failed commands.

        The broker logs a taken session before it answers the CONNECT that took it, so a
        command that kicked a session is in the log before it exits; a fresh subscription is a
        barrier for `offline` (its SUBACK follows every message queued before it)."""
        self.watcher.subscribe(f"{BASE}/response/barrier-{self.ran}")
        return {
            "commands run": self.ran,
            "commands failed": len(self.failures),
            "broker 'already connected' lines": self.broker.log.count(KICK),
            "agent disconnects (its log)": self.agent.output().count(RECONNECTING),
            "consumer disconnects (on_disconnect)": self.counter.count,
            "availability 'offline'": self.offline(),
        }

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """One CLI command as the Pi runs it: the player's get-token, the rest as the agent's
        user with the agent's config (what `sudo mqtt-tokend` does)."""
        config = self.player_config if command == "get-token" else self.agent_config
        result = subprocess.run(
            [*CLI, "--config", str(config), command],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        self.ran += 1
        if result.returncode != 0:
            self.failures.append(
                f"{command} -> {result.returncode}: {result.stdout}{result.stderr}"
            )
        return result

    def stream(
        self, *, commands: int, health_checks: int, workers: int = 2
    ) -> list[subprocess.CompletedProcess[str]]:
        """`commands` CLI commands (status, check, get-token, refresh in turn) with
        `health_checks` health checks spread among them, `workers` at a time."""
        plan = [MIX[i % len(MIX)] for i in range(commands)]
        every = max(1, len(plan) // max(1, health_checks))
        for n in range(health_checks):
            plan.insert(min(len(plan), n * (every + 1)), "health-check")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.run, plan))


@contextmanager
def household(directory: Path, *, extra_conf: str = "", protocol: int = 5) -> Iterator[Household]:
    """Start the broker (the shipped files, plus `extra_conf`), the emulator, a logged-in agent
    and two consumers of the player's user, all on MQTT `protocol` (5 or 3 for 3.1.1); stop
    them all afterwards."""
    with ExitStack() as stack:
        broker = start_broker(directory / "broker", extra_conf=extra_conf)
        stack.callback(stop_broker, broker)
        emulator = stack.enter_context(SpotifyEmulator())
        home = directory / "agent"
        agent_config = logged_in_config(
            home, port=broker.port, emulator=emulator, protocol=protocol
        )
        watcher = Peer(broker.port, "homeassistant", broker.passwords["homeassistant"])
        stack.callback(watcher.close)
        watcher.connect()
        watcher.subscribe(f"{BASE}/availability", f"{BASE}/health")
        agent = AgentProcess(agent_config).start()
        stack.callback(agent.stop)
        watcher.wait_for(f"{BASE}/availability", b"online")
        wait_until(
            lambda: any(b'"state":"ok"' in p for p in watcher.payloads(f"{BASE}/health")),
            timeout=WAIT * 3,
            what="the agent's first ok health record",
        )
        counter = _Counter()
        logger = logging.getLogger("mqtt_tokend.adapters.mqtt")
        logger.addHandler(counter)
        stack.callback(logger.removeHandler, counter)
        player = player_config(
            directory / "player", port=broker.port, key_file=home / "fernet.key", protocol=protocol
        )
        consumers = []
        for _ in range(2):
            consumer = TokenConsumer(load_config(player)).start()
            stack.callback(consumer.stop)
            consumer.token(timeout=WAIT)
            consumers.append(consumer)
        yield Household(broker, agent, agent_config, player, watcher, consumers, counter)
