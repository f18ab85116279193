"""Benchmark of the running agent on loopback: prints a table of measured figures.

    .venv/bin/python bench/bench.py [--refreshes 200] [--idle 60] [--stock-broker]

Starts the Spotify emulator, a private Mosquitto (`set_tcp_nodelay true`) unless
--stock-broker uses the one on 127.0.0.1:1883, logs in with the real `auth` command and runs
the real agent as a subprocess. Figures: cold start to the first retained token at a
subscriber; `request/refresh` to the new retained token (p50, p99); Spotify calls for a burst
of 1,000 refresh requests; `get-token` wall time; resident memory and CPU after an idle spell.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt_tokend.crypto import write_key_file
from mqtt_tokend.demo import Broker, login, write_demo_config
from mqtt_tokend.devbroker import PrivateMosquitto
from mqtt_tokend.emulator import SpotifyEmulator

CLI = [sys.executable, "-m", "mqtt_tokend"]


class TokenWatch:
    """Records the arrival time of every message on one topic."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.arrivals: list[float] = []
        self._cond = threading.Condition()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(6, 1, 1)  # NODELAY
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, *_args: object) -> None:
        with self._cond:
            self.arrivals.append(time.perf_counter())
            self._cond.notify_all()

    def wait_count(self, count: int, timeout: float = 30.0) -> float:
        """Block until `count` messages have arrived; return the arrival time of the last."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise SystemExit(f"timed out waiting for message {count}")
            return self.arrivals[count - 1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=200)
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds before RSS/CPU")
    parser.add_argument("--stock-broker", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mqtt-tokend-bench-"))
    rows: list[tuple[str, str]] = []
    with SpotifyEmulator(token_lifetime=3600) as emulator:
        mosquitto = None if args.stock_broker else PrivateMosquitto(work / "broker").start()
        host, port = ("127.0.0.1", 1883) if mosquitto is None else (mosquitto.host, mosquitto.port)
        base = f"bench/{uuid.uuid4().hex[:8]}"
        broker = Broker(host, port, base, private=mosquitto is not None)
        write_key_file(work / "fernet.key")
        config = write_demo_config(
            work, broker=broker, emulator_url=emulator.url, token_lifetime=3600
        )
        text = config.read_text().replace("min_refresh_interval = 1", "min_refresh_interval = 0")
        config.write_text(text.replace("check_interval = 1800", "check_interval = 3600"))
        login(config, io.StringIO())
        watch = TokenWatch(host, port, f"{base}/token")
        started = time.perf_counter()
        agent = subprocess.Popen(
            [*CLI, "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = watch.wait_count(1)
            rows.append(("cold start to first retained token", f"{(first - started):.3f} s"))

            latencies = []
            for i in range(args.refreshes):
                sent = time.perf_counter()
                watch.client.publish(f"{base}/request/refresh", b"", qos=1)
                latencies.append((watch.wait_count(i + 2) - sent) * 1000)
            latencies.sort()
            p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
            rows.append(
                (
                    f"request/refresh to new retained token, p50 ({args.refreshes} runs)",
                    f"{statistics.median(latencies):.2f} ms",
                )
            )
            rows.append(("request/refresh to new retained token, p99", f"{p99:.2f} ms"))

            config.write_text(text.replace("min_refresh_interval = 0", "min_refresh_interval = 30"))
            agent.terminate()
            agent.wait(10)
            agent = subprocess.Popen(
                [*CLI, "--config", str(config), "run"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            seen = len(watch.arrivals)
            watch.wait_count(seen + 1)
            before = emulator.calls("refresh_token")
            burst_start = time.perf_counter()
            infos = [
                watch.client.publish(f"{base}/request/refresh", b"", qos=1) for _ in range(1000)
            ]
            for info in infos:
                info.wait_for_publish(10)
            burst_time = time.perf_counter() - burst_start
            watch.wait_count(seen + 2)
            rows.append(
                (
                    "Spotify calls for a burst of 1,000 refresh requests",
                    f"{emulator.calls('refresh_token') - before} (burst sent in "
                    f"{burst_time:.2f} s)",
                )
            )

            runs = []
            for _ in range(10):
                t0 = time.perf_counter()
                subprocess.run(
                    [*CLI, "--config", str(config), "get-token"], check=True, capture_output=True
                )
                runs.append(time.perf_counter() - t0)
            rows.append(
                ("get-token wall time, median of 10", f"{statistics.median(runs) * 1000:.0f} ms")
            )

            cpu0 = cpu_seconds(agent.pid)
            t0 = time.monotonic()
            time.sleep(args.idle)  # the figure is what an idle agent costs over this spell
            cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0) * 100
            rows.append(
                (f"agent resident memory after {args.idle:g} s", f"{rss_mib(agent.pid):.1f} MiB")
            )
            rows.append((f"agent CPU while idle ({args.idle:g} s)", f"{cpu:.3f} %"))
        finally:
            agent.terminate()
            agent.wait(10)
            watch.client.loop_stop()
            if mosquitto is not None:
                mosquitto.stop()

    broker_kind = (
        "stock Mosquitto on :1883" if args.stock_broker else "private Mosquitto, set_tcp_nodelay"
    )
    print(
        f"\nmqtt-tokend benchmark: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {broker_kind}"
    )
    width = max(len(name) for name, _ in rows)
    print(f"| {'figure'.ljust(width)} | measured |")
    print(f"|{'-' * (width + 2)}|----------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
