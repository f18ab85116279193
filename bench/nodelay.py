"""A consumer's request round trip with and without TCP_NODELAY on its socket, side by side.

    .venv/bin/python bench/nodelay.py [--rounds 200] [--stock-broker] [--node]

Starts the emulator, a private Mosquitto (`set_tcp_nodelay true`, as the shipped config) unless
--stock-broker uses the one on 127.0.0.1:1883, logs in and runs the real agent. Two MQTT 5
consumers then take turns sending `request/refresh` with a Response Topic and Correlation
Data of their own and waiting for the reply, QoS 1 both ways: one with TCP_NODELAY, one
without. The agent answers each from its rate limit (`rate_limited`, no Spotify call), so the
round trip is the consumer, the broker and the agent alone. --node measures the same with
mqtt.js (docs/examples' npm packages, scripts/node_deps.sh) in the same run. Prints p50 and
p95 per consumer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from harness import BENCH_DIR, TIMEOUT, Rig, Watch, loadavg, percentile
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator

REPO = BENCH_DIR.parent


class Asker:
    """One consumer: sends refresh requests and times each until its reply arrives."""

    def __init__(self, host: str, port: int, base: str, *, nodelay: bool) -> None:
        self.base = base
        self.reply_topic = f"{base}/response/refresh/bench-{uuid.uuid4().hex[:8]}"
        self._cond = threading.Condition()
        self._replies: set[bytes] = set()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if nodelay:
            self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(self.reply_topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(TIMEOUT):
            raise SystemExit(f"could not subscribe on {host}:{port}")

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        with self._cond:
            self._replies.add(bytes(correlation or b""))
            self._cond.notify_all()

    def ask(self) -> float:
        """One request; its round trip in seconds."""
        transaction = uuid.uuid4().hex
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = self.reply_topic
        properties.CorrelationData = transaction.encode()
        body = json.dumps({"transaction": transaction})
        started = time.perf_counter()
        self.client.publish(f"{self.base}/request/refresh", body, qos=1, properties=properties)
        with self._cond:
            if not self._cond.wait_for(lambda: transaction.encode() in self._replies, TIMEOUT):
                raise SystemExit("the agent did not answer a refresh request")
        return time.perf_counter() - started

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def python_rounds(rig: Rig, rounds: int) -> dict[str, list[float]]:
    """Both paho consumers, turn about, `rounds` requests each (after one to warm up)."""
    askers = {
        "Python (paho), TCP_NODELAY": Asker(rig.host, rig.port, rig.base, nodelay=True),
        "Python (paho), without": Asker(rig.host, rig.port, rig.base, nodelay=False),
    }
    times: dict[str, list[float]] = {name: [] for name in askers}
    try:
        for asker in askers.values():
            asker.ask()  # the first request refreshes; the rest are answered `rate_limited`
        for _ in range(rounds):
            for name, asker in askers.items():
                times[name].append(asker.ask())
    finally:
        for asker in askers.values():
            asker.close()
    return times


def node_rounds(rig: Rig, rounds: int, work: Path) -> dict[str, list[float]]:
    """The same with mqtt.js, in one Node process (bench/nodelay.mjs)."""
    modules = subprocess.run(
        ["bash", str(REPO / "scripts" / "node_deps.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.splitlines()[-1]
    shutil.copyfile(BENCH_DIR / "nodelay.mjs", work / "nodelay.mjs")
    (work / "node_modules").symlink_to(modules)
    env = os.environ | {"MQTT_PORT": str(rig.port), "TOKEND_BASE": rig.base}
    result = subprocess.run(
        ["node", str(work / "nodelay.mjs"), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    seconds: dict[str, list[float]] = json.loads(result.stdout)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="requests per consumer")
    parser.add_argument("--stock-broker", action="store_true", help="use 127.0.0.1:1883")
    parser.add_argument("--node", action="store_true", help="also mqtt.js (needs node, npm)")
    args = parser.parse_args()
    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="mqtt-tokend-nodelay-"))
    mosquitto = None if args.stock_broker else PrivateMosquitto(work / "broker").start()
    host, port = ("127.0.0.1", 1883) if mosquitto is None else (mosquitto.host, mosquitto.port)
    try:
        with SpotifyEmulator(token_lifetime=3600) as emulator:
            rig = Rig(
                work / "agent",
                host=host,
                port=port,
                emulator_url=emulator.url,
                token_lifetime=3600,
                agent={"min_refresh_interval": 3600, "check_interval": 3600},
            )
            rig.start_agent()
            ready = Watch(host, port, rig.topic("token"))
            ready.wait_count(1)  # the agent is up and subscribed: its token is out
            ready.close()
            try:
                times = python_rounds(rig, args.rounds)
                if args.node:
                    times |= node_rounds(rig, args.rounds, work)
            finally:
                rig.stop_agent()
                rig.clear_retained()
    finally:
        if mosquitto is not None:
            mosquitto.stop()
        shutil.rmtree(work, ignore_errors=True)
    broker = "stock Mosquitto on 127.0.0.1:1883" if args.stock_broker else "private Mosquitto"
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{broker} (set_tcp_nodelay true unless stock), load average {load_start}; "
        f"{args.rounds} requests per consumer, turn about\n"
    )
    print("| consumer socket | p50 | p95 |")
    print("|---|---|---|")
    for name, seconds in times.items():
        p50, p95 = percentile(seconds, 50) * 1000, percentile(seconds, 95) * 1000
        print(f"| {name} | {p50:.2f} ms | {p95:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
