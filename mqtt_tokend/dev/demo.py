"""`mqtt-tokend demo`: the whole product, live, against the built-in Spotify emulator.

Starts the emulator with a short token lifetime and a private Mosquitto (or, with
--shared-broker, the local one under a base topic and discovery prefix of its own), logs in
through the real `auth` command, runs the real agent as a subprocess, and prints what appears
on the broker as it happens. It leaves no trace: the private broker goes with its temporary
directory, and on a shared broker every retained message it published is removed on exit
(Home Assistant never sees its device: the discovery prefix is not one Home Assistant reads).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mqtt_tokend.adapters import signals
from mqtt_tokend.adapters.crypto import TokenCipher, write_key_file
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.consumer import decode_token
from mqtt_tokend.contract.homeassistant import removal_messages
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto, port_open
from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator
from mqtt_tokend.dev.relogin import States, relogin_scene
from mqtt_tokend.errors import TokendError

LOCAL_BROKER = ("127.0.0.1", 1883)
BASE_TOPIC = "lofi/spotify"
SHARED_BASE_TOPIC = "mqtt-tokend-demo/{run}/spotify"  # on a shared broker: never a real agent's
SHARED_DISCOVERY_PREFIX = "mqtt-tokend-demo/{run}/discovery"  # not Home Assistant's prefix
STOP_TIMEOUT = 10.0
EXAMPLE_PLAYER = Path(__file__).resolve().parents[2] / "examples" / "player.py"


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


@dataclass(frozen=True)
class Broker:
    """Where the demo's broker is and what base topic it uses."""

    host: str
    port: int
    base_topic: str
    private: bool
    discovery_prefix: str = "homeassistant"


def write_demo_config(
    workdir: Path, *, broker: Broker, emulator_url: str, token_lifetime: float
) -> Path:
    """A config for the demo: the emulator as Spotify, short intervals to see things move."""
    early = max(2.0, token_lifetime / 4)
    config = f"""\
# Written by `mqtt-tokend demo`: Spotify is the built-in emulator at {emulator_url}.
[spotify]
client_id = "{DEMO_CLIENT_ID}"
redirect_uri = "http://127.0.0.1:8888/callback"
accounts_url = "{emulator_url}"
api_url = "{emulator_url}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
base_topic = "{broker.base_topic}"

[homeassistant]
discovery_prefix = "{broker.discovery_prefix}"

[agent]
state_dir = "state"
key_file = "fernet.key"
check_interval = {max(5.0, token_lifetime / 2):g}
refresh_early_seconds = {early:g}
max_backoff = 10
min_refresh_interval = 1
"""
    path = workdir / "config.toml"
    path.write_text(config)
    return path


def parse_broker(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `PORT` or `HOST` (port 1883) for --shared-broker."""
    host, separator, port = text.rpartition(":")
    if not separator:
        host, port = (LOCAL_BROKER[0], text) if text.isdigit() else (text, "1883")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TokendError(f"--shared-broker {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host or LOCAL_BROKER[0], int(port)


@contextlib.contextmanager
def _broker(workdir: Path, *, shared: tuple[str, int] | None) -> Iterator[Broker]:
    if shared is None:
        with PrivateMosquitto(workdir / "broker") as mosquitto:
            yield Broker(mosquitto.host, mosquitto.port, BASE_TOPIC, private=True)
        return
    host, port = shared
    if not port_open(host, port):
        raise TokendError(f"no broker listens on {host}:{port} (leave out --shared-broker)")
    run = uuid.uuid4().hex[:8]
    yield Broker(
        host,
        port,
        SHARED_BASE_TOPIC.format(run=run),
        private=False,
        discovery_prefix=SHARED_DISCOVERY_PREFIX.format(run=run),
    )


def retained_topics(base_topic: str, discovery_prefix: str) -> list[str]:
    """Every topic on which an agent may leave a retained message: its own tree and its Home
    Assistant discovery configs (an empty retained message on those removes the device)."""
    topics = Topics(base_topic)
    ours = [topics.availability, topics.token, topics.token_app, topics.health, topics.devices]
    ours.append(f"{base_topic}/login")
    removals = removal_messages(base_topic=base_topic, discovery_prefix=discovery_prefix)
    return ours + [topic for topic, _payload in removals]


def clear_retained(mqtt: MqttConfig, base_topic: str, discovery_prefix: str) -> int:
    """Remove an agent's retained messages and Home Assistant device from the broker (the demo
    on exit, the installer's --uninstall --purge); returns how many topics were cleared."""
    topics = retained_topics(base_topic, discovery_prefix)
    with oneshot(mqtt, timeout=5.0, purpose="cleanup") as session:
        for topic in topics:
            session.publish(topic, b"", retain=True)
    return len(topics)


def _cli(config: Path) -> list[str]:
    return [sys.executable, "-m", "mqtt_tokend", "--config", str(config)]


def login(config: Path, out: TextIO) -> None:
    """Drive the real `auth` command the way a person would, with the emulator approving."""
    process = subprocess.Popen(
        [*_cli(config), "auth"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().strip() if process.stdout else ""
    if not url.startswith("http"):
        process.kill()
        _, err = process.communicate()
        raise TokendError(f"`mqtt-tokend auth` did not print a URL: {err.strip()}")
    print(f"{_stamp()}  auth printed the login URL; the emulator approves it", file=out)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_args: object, **_kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url, timeout=10)
        raise TokendError("the emulator did not redirect the login")
    except urllib.error.HTTPError as redirect:
        location = redirect.headers.get("Location", "")
    _, err = process.communicate(location + "\n", timeout=30)
    if process.returncode != 0:
        raise TokendError(f"`mqtt-tokend auth` failed: {err.strip()}")
    who = err.strip().splitlines()[-2] if err.strip() else ""
    print(f"{_stamp()}  {who}", file=out)


class Narrator:
    """Prints what appears on the broker, one line per event, never a token."""

    def __init__(self, base_topic: str, cipher: TokenCipher, out: TextIO) -> None:
        self.topics = Topics(base_topic)
        self._cipher = cipher
        self._out = out
        self._last_health: tuple[object, object] | None = None
        self._last_availability: bytes | None = None  # the agent re-says `online` with health
        self.states = States()
        self._say_lock = threading.Lock()

    def say(self, text: str) -> None:
        """One time-stamped line (whole, though a scene speaks from another thread)."""
        with self._say_lock:
            print(f"{_stamp()}  {text}", file=self._out, flush=True)

    def __call__(self, message: Message) -> None:
        """Narrate one message."""
        topics, payload = self.topics, message.payload
        if message.retain:
            return  # left on the broker by an earlier run; only live events are news
        if message.topic == topics.availability:
            if payload != self._last_availability:
                self._last_availability = payload
                self.say(f"availability: {payload.decode(errors='replace')}")
        elif message.topic == topics.health and payload:
            self._health(json.loads(payload))
        elif message.topic == topics.token and payload:
            token = decode_token(self._cipher, payload, now=time.time())
            if token is not None:
                digest = token.sha256[:12]
                left = token.expires_at - time.time()
                self.say(
                    f"token: access token sha256:{digest}... retained on the broker, "
                    f"Fernet-encrypted, valid {left:.0f} s"
                )
        elif message.topic.startswith(f"{topics.base}/response/") and payload:
            body = json.loads(payload)
            refreshed = body.get("data", {}).get("refreshed")
            extra = "" if refreshed is None else f", refreshed: {refreshed}"
            self.say(f"{message.topic}: {body.get('status')}{extra}")

    def _health(self, health: dict[str, object]) -> None:
        key = (health.get("state"), health.get("last_refresh"))
        if key != self._last_health:
            self._last_health = key
            next_refresh = health.get("next_refresh")
            when = ""
            if isinstance(next_refresh, int | float):
                when = f"; next refresh in {max(0.0, next_refresh - time.time()):.0f} s"
            self.say(f"health: {health.get('state')} ({health.get('message')}){when}")
        self.states.add(str(health.get("state")))  # after the line: a scene speaks next

    @contextlib.contextmanager
    def watching(self, broker: Broker) -> Iterator[None]:
        """Subscribe to `<base>/#` and narrate until the block ends."""
        config = MqttConfig(host=broker.host, port=broker.port)
        with oneshot(config, timeout=5.0, purpose="demo-watch") as session:
            session.listener = self
            session.subscribe([f"{self.topics.base}/#"], timeout=5.0)
            yield


def run_demo(
    *,
    duration: float | None,
    token_lifetime: float = 20.0,
    shared_broker: str | None = None,
    state_dir: Path | None = None,
    relogin: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run everything until Ctrl-C or `duration` seconds; stop it all cleanly."""
    temporary = state_dir is None
    workdir = state_dir or Path(tempfile.mkdtemp(prefix="mqtt-tokend-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set `stop`, from a thread of their own: a KeyboardInterrupt could
    # land inside a lock's bookkeeping (Event.wait's) and break it, and a second Ctrl-C would
    # cut the agent's stop short.
    signals.on_stop_signals(lambda _name: stop.set())
    try:
        with (
            SpotifyEmulator(token_lifetime=token_lifetime) as emulator,
            _broker(
                workdir, shared=parse_broker(shared_broker) if shared_broker else None
            ) as broker,
        ):
            where = "a private Mosquitto" if broker.private else "the shared Mosquitto"
            print(
                f"{_stamp()}  Spotify emulator at {emulator.url} "
                f"(tokens live {token_lifetime:g} s)",
                file=out,
            )
            print(
                f"{_stamp()}  broker: {where} at {broker.host}:{broker.port}, "
                f"base topic {broker.base_topic}",
                file=out,
            )
            key_file = workdir / "fernet.key"
            if not key_file.exists():
                write_key_file(key_file)
            config = write_demo_config(
                workdir, broker=broker, emulator_url=emulator.url, token_lifetime=token_lifetime
            )
            login(config, out)
            narrator = Narrator(broker.base_topic, TokenCipher.from_file(key_file), out)

            def scene() -> None:
                mqtt = MqttConfig(host=broker.host, port=broker.port)
                refresh = Topics(broker.base_topic).request("refresh")

                def ask_refresh() -> None:
                    with oneshot(mqtt, timeout=5.0, purpose="demo-refresh") as session:
                        session.publish(refresh, b"")

                relogin_scene(
                    emulator=emulator,
                    config=config,
                    states=narrator.states,
                    ask_refresh=ask_refresh,
                    login=lambda: login(config, out),
                    say=narrator.say,
                )

            try:
                with narrator.watching(broker):
                    _run_agent(
                        config, broker, duration, stop, out, scene=scene if relogin else None
                    )
            finally:
                if not broker.private:
                    mqtt = MqttConfig(host=broker.host, port=broker.port)
                    clear_retained(mqtt, broker.base_topic, broker.discovery_prefix)
                    print(
                        f"{_stamp()}  removed the demo's retained messages from "
                        f"{broker.host}:{broker.port}",
                        file=out,
                        flush=True,
                    )
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _run_agent(
    config: Path,
    broker: Broker,
    duration: float | None,
    stop: threading.Event,
    out: TextIO,
    *,
    scene: Callable[[], None] | None = None,
) -> None:
    port = "" if broker.port == 1883 else f" -p {broker.port}"
    quoted = shlex.quote(str(config))
    player = ""
    if EXAMPLE_PLAYER.is_file():  # a checkout of the repository, not an installed wheel
        where = shlex.quote(str(EXAMPLE_PLAYER))
        player = f"A player:           {sys.executable} {where} --config {quoted}\n"
    print(
        f"""
Watch the broker:   mosquitto_sub{port} -v -t '{broker.base_topic}/#'
Force a refresh:    mosquitto_pub{port} -t {broker.base_topic}/request/refresh -n
Get the token:      {sys.executable} -m mqtt_tokend --config {quoted} get-token
{player}Stop the demo:      Ctrl-C
""",
        file=out,
        flush=True,
    )
    agent_log = config.parent / "agent.log"
    with agent_log.open("ab") as log:
        agent = subprocess.Popen(
            [*_cli(config), "run"], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
    started = time.monotonic()
    try:
        if scene is not None:
            scene()
        stop.wait(None if duration is None else max(0.0, duration - (time.monotonic() - started)))
        if stop.is_set():
            print(file=out)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        print(f"{_stamp()}  agent stopped (exit {agent.returncode})", file=out, flush=True)
