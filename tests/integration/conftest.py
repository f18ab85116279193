"""Integration fixtures: a private Mosquitto, the Spotify emulator, the real CLI as subprocesses.

Fixtures chain: broker + emulator + base_topic (+ mqtt_protocol, mqtt_options) -> config_file
-> logged_in -> agent. Every test with a `broker` also gets `contract`: everything published
under the base topic is checked against `topics/` when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator
from tests.integration.checker import ContractChecker
from tests.integration.watch import Watcher, wait_until

CLI = [sys.executable, "-m", "mqtt_tokend"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto of our own on a free port (anonymous, TCP_NODELAY, no persistence)."""
    with PrivateMosquitto(tmp_path / "broker") as mosquitto:
        yield mosquitto


@pytest.fixture
def token_lifetime() -> float:
    """Access-token lifetime the emulator grants; tests shorten it to watch refreshes."""
    return 3600.0


@pytest.fixture
def emulator(token_lifetime: float) -> Iterator[SpotifyEmulator]:
    """The Spotify emulator over real HTTP on loopback."""
    with SpotifyEmulator(token_lifetime=token_lifetime) as emu:
        yield emu


@pytest.fixture
def base_topic() -> str:
    """A topic tree no other test uses."""
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topics(base_topic: str) -> Topics:
    """The agent's topics under the test's base topic."""
    return Topics(base_topic)


@pytest.fixture
def redirect_port() -> int:
    return free_port()


@pytest.fixture
def extra_config() -> str:
    """TOML lines appended to the [agent] section."""
    return ""


@pytest.fixture
def mqtt_protocol() -> int:
    """`mqtt.protocol` of the config: 5, or 3 for MQTT 3.1.1."""
    return 5


@pytest.fixture
def mqtt_options() -> dict[str, object]:
    """[mqtt] keys that override or extend the defaults (port, credentials, TLS)."""
    return {}


def toml_value(value: object) -> str:
    """A str, bool, int or path as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def write_agent_config(
    directory: Path,
    *,
    emulator_url: str,
    mqtt: dict[str, object],
    agent: dict[str, object] | None = None,
    redirect_uri: str = "http://127.0.0.1:8888/callback",
    extra: str = "",
) -> Path:
    """An agent's config.toml in `directory` with the emulator as Spotify, 0600, and a fresh
    key beside it (`keygen`); `extra` is appended after the [agent] keys."""
    directory.mkdir(parents=True, exist_ok=True)
    agent = {"state_dir": "state", "key_file": "fernet.key"} | (agent or {})

    def lines(values: dict[str, object]) -> str:
        return "\n".join(f"{key} = {toml_value(value)}" for key, value in values.items())

    path = directory / "config.toml"
    path.write_text(
        f"""
[spotify]
client_id = "{DEMO_CLIENT_ID}"
redirect_uri = "{redirect_uri}"
accounts_url = "{emulator_url}"
api_url = "{emulator_url}"
request_timeout = 3

[mqtt]
{lines(mqtt)}

[agent]
{lines(agent)}
{extra}
"""
    )
    path.chmod(0o600)  # a config may hold secrets; the agent refuses one others can read
    result = cli(path, "keygen")
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def config_file(
    tmp_path: Path,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
    base_topic: str,
    redirect_port: int,
    extra_config: str,
    mqtt_protocol: int,
    mqtt_options: dict[str, object],
) -> Path:
    """A config pointing at the private broker and the emulator, with a fresh key."""
    mqtt = {
        "host": "127.0.0.1",
        "port": broker.port,
        "base_topic": base_topic,
        "keepalive": 5,
        "protocol": mqtt_protocol,
    } | mqtt_options
    return write_agent_config(
        tmp_path,
        emulator_url=emulator.url,
        mqtt=mqtt,
        agent={
            "check_interval": 60,
            "refresh_early_seconds": 600,
            "max_backoff": 2,
            "min_refresh_interval": 30,
        },
        redirect_uri=f"http://127.0.0.1:{redirect_port}/callback",
        extra=extra_config,
    )


def cli(
    config: Path, *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `mqtt-tokend --config CONFIG ARGS...` and capture its output."""
    return subprocess.run(
        [*CLI, "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def approve(url: str) -> str:
    """What a browser does at the emulator's /authorize: return the redirect it is sent to."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_args: object, **_kwargs: object) -> None:
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 302, redirect.code
        return str(redirect.headers["Location"])
    raise AssertionError("the emulator did not redirect")


def login(config: Path) -> subprocess.CompletedProcess[str]:
    """`mqtt-tokend auth` driven through standard input, as a script or a person would."""
    process = subprocess.Popen(
        [*CLI, "--config", str(config), "auth"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    redirect = approve(url)
    out, err = process.communicate(redirect + "\n", timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, url + "\n" + out, err)


@pytest.fixture
def logged_in(config_file: Path) -> Path:
    """The config after a successful headless login."""
    result = login(config_file)
    assert result.returncode == 0, result.stderr
    return config_file


class AgentProcess:
    """`mqtt-tokend run` as a subprocess, its log in a file."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log = config.parent / "agent-stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*CLI, "--config", str(self.config), "--log-level", "DEBUG", "run"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        return self

    def signal(self, signum: int) -> int:
        """Send `signum` and wait for the exit; an agent that does not exit is killed (so no
        test leaves one running) and the failure shows the end of its log."""
        assert self.process is not None
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            tail = "\n".join(self.output().splitlines()[-20:])
            raise AssertionError(f"the agent ignored signal {signum} for 15 s:\n{tail}") from None

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def contract(
    broker: PrivateMosquitto, base_topic: str, tmp_path: Path, mqtt_protocol: int
) -> Iterator[ContractChecker]:
    """Everything published under the base topic must fit `topics/` (checked at the end)."""
    with ContractChecker(
        broker.host,
        broker.port,
        base_topic,
        key_file=tmp_path / "fernet.key",
        mqtt5=mqtt_protocol == 5,
    ) as checker:
        yield checker
    problems = checker.problems()
    assert not problems, "published off the contract in topics/:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _contract_wherever_a_broker_runs(request: pytest.FixtureRequest) -> None:
    """Tests that start agents themselves are checked too, not only those with `agent`."""
    if "broker" in request.fixturenames:
        request.getfixturevalue("contract")


@pytest.fixture
def agent(logged_in: Path, contract: ContractChecker) -> Iterator[AgentProcess]:
    """A running agent (logged in); stopped with SIGTERM at the end."""
    process = AgentProcess(logged_in).start()
    yield process
    process.stop()


@pytest.fixture
def watcher(
    broker: PrivateMosquitto, base_topic: str, contract: ContractChecker
) -> Iterator[Watcher]:
    """A subscriber to `<base>/#` that records everything."""
    with Watcher(broker.host, broker.port, f"{base_topic}/#") as watch:
        yield watch


__all__ = ["AgentProcess", "ContractChecker", "approve", "cli", "login", "wait_until"]
