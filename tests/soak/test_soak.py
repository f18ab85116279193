"""Soak with accelerated time: weeks of trouble in a minute (or a month in half an hour).

Tokens live LIFETIME seconds; PKCE rotation is on. Faults come at random (seeded): 5xx, 429
with Retry-After, timeouts, dropped connections, garbage bodies, a trickling Spotify, a full
state directory (a tmpfs, when the test may mount one), broker restarts and kill -9 of the
agent, which a supervisor restarts as systemd would. A consumer watches all along.

    MQTT_TOKEND_SOAK_LIFETIMES=720 ./scripts/test tests/soak -s   # the long run: 30 days

Asserts: no re-login is ever needed (no refresh token lost), the consumer never holds an
expired token unless something was disturbed within the lead time before, Spotify calls stay
within the stated bound, and the agent ends `ok`. Prints the figures for docs/measurements.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, write_key_file
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator
from tests.integration.conftest import login
from tests.integration.watch import Seen, Watcher, wait_until

pytestmark = pytest.mark.integration

LIFETIMES = int(os.environ.get("MQTT_TOKEND_SOAK_LIFETIMES", "40"))
LIFETIME = float(os.environ.get("MQTT_TOKEND_SOAK_LIFETIME", "1.5"))
SEED = int(os.environ.get("MQTT_TOKEND_SOAK_SEED", "20261127"))
SIMULATED_LIFETIME = 3600.0  # one real token lifetime; LIFETIME seconds stand for it here
LEAD = LIFETIME / 2  # refresh_at caps the lead at half the lifetime
GRACE = 3 * LIFETIME  # after a disturbance, an expired token may be held this long
REQUEST_TIMEOUT = 0.5
CLI = [sys.executable, "-m", "mqtt_tokend"]

ACTIONS = [
    "5xx",
    "429",
    "timeout",
    "drop",
    "garbage",
    "broker_restart",
    "kill",
    "kill_in_refresh",
    "trickle",
    "full_disk",
    "quiet",
    "quiet",
]


@dataclass
class Timeline:
    """What the chaos did, and when (monotonic)."""

    actions: list[tuple[float, str]] = field(default_factory=list)
    deferred_kills: int = 0
    restarts: int = 0

    def note(self, what: str) -> None:
        self.actions.append((time.monotonic(), what))

    def disturbed(self, start: float, end: float) -> bool:
        return any(start <= at <= end for at, _ in self.actions)


class Supervisor:
    """Runs `mqtt-tokend run` and restarts it when it dies (Restart=on-failure, RestartSec)."""

    def __init__(self, config: Path, timeline: Timeline) -> None:
        self._config = config
        self._timeline = timeline
        self._stop = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _spawn(self) -> None:
        with (self._config.parent / "agent.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*CLI, "--config", str(self._config), "run"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def start(self) -> Supervisor:
        self._spawn()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                process = self.process
            assert process is not None
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            if self._stop.wait(0.2):  # RestartSec
                return
            with self._lock:
                self._spawn()
                self._timeline.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=15)


class Consumer:
    """Holds the newest token it was given, like a player would, and samples it."""

    def __init__(self, watcher: Watcher, topic: str, cipher: TokenCipher) -> None:
        self._watcher, self._topic, self._cipher = watcher, topic, cipher
        self.samples: list[tuple[float, float, float | None]] = []  # (mono, wall, expires_at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def held(self) -> float | None:
        messages = self._watcher.on(self._topic)
        if not messages or not messages[-1].payload:
            return None
        expires_at: float = self._cipher.decrypt_json(messages[-1].payload)["expires_at"]
        return expires_at

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.monotonic(), time.time(), self.held()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def kill_safely(
    supervisor: Supervisor, store: TokenStore, emulator: SpotifyEmulator, timeline: Timeline
) -> None:
    """kill -9, except in the instant between Spotify's answer and the disk write.

    In that instant the rotated refresh token exists only in the dying process: losing it
    is Spotify's single-use design, not something an agent can prevent. The agent
    is frozen (SIGSTOP) to look; if the token on disk is not the live one, it is let go.
    """
    process = supervisor.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGSTOP)
    try:
        on_disk = store.load()
        safe = on_disk is not None and on_disk.refresh_token in emulator.live_refresh_tokens()
    finally:
        if not safe:
            process.send_signal(signal.SIGCONT)
    if safe:
        process.send_signal(signal.SIGKILL)
        process.send_signal(signal.SIGCONT)
        timeline.note("kill")
    else:
        timeline.deferred_kills += 1


@pytest.fixture
def soak_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def broker(soak_dir: Path) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(soak_dir / "broker") as mosquitto:
        yield mosquitto


def write_config(
    workdir: Path, broker: PrivateMosquitto, emulator: SpotifyEmulator, base: str
) -> Path:
    path = workdir / "config.toml"
    path.write_text(f"""
[spotify]
client_id = "{DEMO_CLIENT_ID}"
redirect_uri = "http://127.0.0.1:8888/callback"
accounts_url = "{emulator.url}"
api_url = "{emulator.url}"
request_timeout = {REQUEST_TIMEOUT}

[mqtt]
port = {broker.port}
base_topic = "{base}"
keepalive = 5

[agent]
state_dir = "state"
key_file = "fernet.key"
check_interval = {LIFETIME * 2}
refresh_early_seconds = {LIFETIME}
max_backoff = 1
min_refresh_interval = 0

[homeassistant]
enabled = false
""")
    write_key_file(workdir / "fernet.key")
    return path


def mount_tmpfs(directory: Path) -> bool:
    """A small tmpfs for the state directory, so that the soak can fill it; False if not allowed."""
    directory.mkdir(mode=0o700)
    options = "size=1m,mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    return mounted.returncode == 0


def fill_for_a_while(state: Path, seconds: float) -> None:
    """The state directory full for `seconds`, then freed."""
    filler = state / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\1" * 4096)
        except OSError:  # ENOSPC
            pass
    time.sleep(seconds)  # the fault's duration
    filler.unlink()


def test_soak(soak_dir: Path, broker: PrivateMosquitto) -> None:
    rng = random.Random(SEED)
    state = soak_dir / "state"
    can_fill = mount_tmpfs(state)
    try:
        run_soak(soak_dir, broker, rng, state if can_fill else None)
    finally:
        if can_fill:
            subprocess.run(["umount", "-l", str(state)], check=False)


def run_soak(
    soak_dir: Path, broker: PrivateMosquitto, rng: random.Random, fillable: Path | None
) -> None:
    base = "soak/lofi"
    topics = Topics(base)
    timeline = Timeline()
    with SpotifyEmulator(token_lifetime=LIFETIME) as emulator:
        config = write_config(soak_dir, broker, emulator, base)
        assert login(config).returncode == 0
        cipher = TokenCipher.from_file(soak_dir / "fernet.key")
        store = TokenStore(soak_dir / "state", cipher=cipher)
        supervisor = Supervisor(config, timeline).start()
        with Watcher(broker.host, broker.port, f"{base}/#") as watcher:
            watcher.wait_for(topics.token, timeout=10)
            consumer = Consumer(watcher, topics.token, cipher)
            started = time.monotonic()
            end = started + LIFETIMES * LIFETIME
            try:
                while time.monotonic() < end:
                    time.sleep(rng.uniform(0.3, 1.5) * LIFETIME)  # the chaos's own pace
                    act(rng, emulator, broker, supervisor, store, timeline, fillable)
                emulator.clear_faults()
                calm = time.monotonic()
                final = watcher.wait_for(
                    topics.health,
                    lambda m: bool(m.payload) and m.json()["state"] == "ok",
                    after=calm,
                    timeout=10 * LIFETIME,
                )
            finally:
                consumer.stop()
                supervisor.stop()
            elapsed = time.monotonic() - started
            judge(watcher, topics, consumer, timeline, emulator, final, elapsed)


def act(
    rng: random.Random,
    emulator: SpotifyEmulator,
    broker: PrivateMosquitto,
    supervisor: Supervisor,
    store: TokenStore,
    timeline: Timeline,
    fillable: Path | None = None,
) -> None:
    action = rng.choice(ACTIONS)
    if action == "full_disk" and fillable is None:
        action = "quiet"  # no tmpfs here: this fault cannot be made
    if action == "5xx":
        emulator.inject("status", status=rng.choice([500, 502, 503]), count=2)
    elif action == "429":
        emulator.inject("rate_limit", retry_after=1, count=1)
    elif action == "timeout":
        emulator.inject("delay", delay=REQUEST_TIMEOUT * 2, count=1)
    elif action == "trickle":
        emulator.inject("trickle", delay=REQUEST_TIMEOUT / 3, count=1)
    elif action == "full_disk" and fillable is not None:
        timeline.note(action)  # from the moment it fills: expiry meanwhile has a cause
        fill_for_a_while(fillable, 2 * LIFETIME)
        return
    elif action in ("drop", "garbage"):
        emulator.inject(action, count=1)
    elif action == "broker_restart":
        broker.restart()
    elif action == "kill":
        kill_safely(supervisor, store, emulator, timeline)
        return
    elif action == "kill_in_refresh":
        # A refresh that hangs in the network, and the agent killed while it waits for it.
        before = emulator.calls("refresh_token")
        emulator.inject("delay", delay=REQUEST_TIMEOUT * 0.9, count=1)
        wait_until(
            lambda: emulator.calls("refresh_token") > before,
            timeout=3 * LIFETIME,
            what="a refresh in flight",
        )
        kill_safely(supervisor, store, emulator, timeline)
        return
    if action != "quiet":
        timeline.note(action)


def judge(
    watcher: Watcher,
    topics: Topics,
    consumer: Consumer,
    timeline: Timeline,
    emulator: SpotifyEmulator,
    final: Seen,
    elapsed: float,
) -> None:
    states = [m.json()["state"] for m in watcher.on(topics.health) if m.payload]
    relogins = states.count("auth_required")
    stale = [
        (mono, wall, expires)
        for mono, wall, expires in consumer.samples
        if expires is not None
        and expires < wall
        and not timeline.disturbed(mono - (wall - expires) - LEAD - GRACE, mono)
    ]
    kinds = Counter(what for _, what in timeline.actions)
    calls = emulator.calls("refresh_token")
    ideal = elapsed / (LIFETIME - LEAD)
    bound = 2 * ideal + 6 * len(timeline.actions) + 3 * timeline.restarts
    simulated_days = elapsed / LIFETIME * SIMULATED_LIFETIME / 86400
    figures = {
        "token lifetimes": round(elapsed / LIFETIME),
        "simulated days": round(simulated_days, 1),
        "faults injected": dict(sorted(kinds.items())),
        "agent restarts": timeline.restarts,
        "kills deferred (rotation in flight)": timeline.deferred_kills,
        "Spotify refresh calls": calls,
        "call bound": round(bound),
        "re-logins": relogins,
        "stale-token samples": len(stale),
        "final state": final.json()["state"],
    }
    print("\nsoak:", json.dumps(figures, indent=2))
    assert relogins == 0, "a refresh token was lost"
    assert not stale, f"the consumer held an expired token without cause: {stale[:3]}"
    assert calls <= bound
    assert final.json()["state"] == "ok"
