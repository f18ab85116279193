"""systemd's watchdog against a real agent subprocess: a trickling Spotify does not trip it, a
frozen loop does (issue 12, item 3)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess
from tests.integration.helpers import mosquitto_pub, report, set_in_config, state_is
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


# ---- item 3: systemd's watchdog ---------------------------------------------------------------


class FakeSystemd:
    """What systemd does with $NOTIFY_SOCKET: receive datagrams, note when each came."""

    def __init__(self) -> None:
        self.name = f"@mqtt-tokend-test-{uuid.uuid4().hex[:12]}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(b"\0" + self.name[1:].encode())
        self._sock.settimeout(0.2)
        self._lock = threading.Lock()
        self.seen: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            at = time.monotonic()
            with self._lock:
                self.seen.extend((at, field) for field in data.decode().splitlines())

    def times(self, field: str) -> list[float]:
        with self._lock:
            return [at for at, seen in self.seen if seen == field]

    def received(self) -> int:
        """How many watchdog pings have come, once every datagram sent so far is read: a marker
        sent now arrives after them (one queue), however slowly this process is scheduled."""
        marker = f"MARKER={uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(marker.encode(), b"\0" + self.name[1:].encode())
        wait_until(lambda: self.times(marker), timeout=10, what="the marker datagram")
        return len(self.times("WATCHDOG=1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


WATCHDOG_SEC = 6.0


def test_watchdog_trips_on_a_frozen_loop_not_on_a_trickling_spotify(
    logged_in: Path,
    watcher: Watcher,
    topics: Topics,
    broker: PrivateMosquitto,
    emulator: SpotifyEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_in_config(logged_in, "request_timeout", "1")
    systemd = FakeSystemd()
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.name)
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_SEC * 1_000_000)))
    agent = AgentProcess(logged_in).start()
    assert agent.process is not None
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        ready = wait_until(lambda: systemd.times("READY=1"), timeout=10, what="READY=1")[0]
        with_ready = [field for at, field in systemd.seen if at == ready]
        assert "STATUS=ok: login loaded" in with_ready, with_ready  # the first health record
        wait_until(lambda: len(systemd.times("WATCHDOG=1")) >= 2, timeout=10, what="pings")

        # A stalled Spotify: every refresh trickles until its overall deadline.
        emulator.inject("trickle", endpoint="token", count=None, delay=0.4)
        start = time.monotonic()
        mosquitto_pub(broker, topics.request("refresh"))
        retrying = watcher.wait_for(topics.health, state_is("retrying"), after=start, timeout=10)
        report("trickling Spotify to retrying", retrying.at - start)
        token = watcher.on(topics.token)[-1]
        assert token.payload, "the token must stay served"
        answered = topics.response("refresh")
        base = len(watcher.on(answered))
        for sent in range(base, base + 4):  # keep the loop busy with stalled calls for a while
            mosquitto_pub(broker, topics.request("refresh"))
            wait_until(
                lambda n=sent: len(watcher.on(answered)) > n,
                timeout=10,
                what="the answer to a refresh",
            )
        pings = [at for at in systemd.times("WATCHDOG=1") if at >= start]
        gaps = [b - a for a, b in zip([start, *pings], pings, strict=False)]
        print(f"\n[watchdog] longest gap between pings while Spotify trickles: {max(gaps):.2f} s")
        assert max(gaps) < WATCHDOG_SEC, gaps
        assert watcher.on(topics.token)[-1].payload == token.payload
        emulator.clear_faults()

        # A frozen loop: no ping within WatchdogSec, so systemd would restart it.
        os.kill(agent.process.pid, signal.SIGSTOP)
        before = systemd.received()  # pings sent before the stop, however late we read them
        time.sleep(WATCHDOG_SEC)  # the window in which systemd expects a ping
        assert systemd.received() == before, "a frozen agent must not ping"
        os.kill(agent.process.pid, signal.SIGCONT)
        wait_until(
            lambda: len(systemd.times("WATCHDOG=1")) > before,
            timeout=WATCHDOG_SEC,
            what="pings again after SIGCONT",
        )
        agent.stop()
        assert systemd.times("STOPPING=1"), systemd.seen
    finally:
        if agent.process.poll() is None:
            os.kill(agent.process.pid, signal.SIGCONT)
        agent.stop()
        systemd.close()
