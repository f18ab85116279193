"""What the benchmark drives: a logged-in agent config, the agent process, MQTT watchers.

Everything runs for real on loopback: the Spotify emulator, a Mosquitto, the `auth` command
and `mqtt-tokend run` as a subprocess. Nothing here measures; `figures` and `baseline` do.
"""

from __future__ import annotations

import io
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt_tokend.adapters.crypto import write_key_file
from mqtt_tokend.dev.demo import Broker, login, write_demo_config

CLI = [sys.executable, "-m", "mqtt_tokend"]
BENCH_DIR = Path(__file__).resolve().parent
TIMEOUT = 30.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]


def rss_mib(pid: int) -> float:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mqtt_client(host: str, port: int) -> paho.Client:
    """An MQTT 5 client with TCP_NODELAY, as the agent's own are (not yet connected)."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
    )
    return client


class Watch:
    """Subscribes to one topic and records the arrival time and payload of every message."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.arrivals: list[float] = []
        self.payloads: list[bytes] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt_client(host, port)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(TIMEOUT):
            raise SystemExit(f"could not subscribe to {topic} on {host}:{port}")

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.arrivals.append(time.perf_counter())
            self.payloads.append(bytes(message.payload))
            self._cond.notify_all()

    def wait_count(self, count: int, timeout: float = TIMEOUT) -> float:
        """Block until `count` messages have arrived; the arrival time of the last of them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise SystemExit(f"timed out waiting for message {count}")
            return self.arrivals[count - 1]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class Rig:
    """A config logged in (with the real `auth` command) against an emulator, and its agent."""

    def __init__(
        self,
        work: Path,
        *,
        host: str,
        port: int,
        emulator_url: str,
        token_lifetime: float,
        agent: dict[str, float],
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.base = f"bench/{uuid.uuid4().hex[:8]}"
        write_key_file(work / "fernet.key")
        self.key_file = work / "fernet.key"
        # Discovery stays under the bench's own topic, so a shared broker's Home Assistant
        # never sees a benchmark device.
        broker = Broker(
            host, port, self.base, private=False, discovery_prefix=f"{self.base}/homeassistant"
        )
        self.config = write_demo_config(
            work, broker=broker, emulator_url=emulator_url, token_lifetime=token_lifetime
        )
        self.set(**agent)
        login(self.config, io.StringIO())
        self.process: subprocess.Popen[bytes] | None = None

    def topic(self, leaf: str) -> str:
        """A topic under the rig's base topic."""
        return f"{self.base}/{leaf}"

    def set(self, **keys: float) -> None:
        """Rewrite `[agent]` keys in the config (read by the next agent started)."""
        text = self.config.read_text()
        for key, value in keys.items():
            text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value:g}", text)
            if not found:
                text = text.replace("[agent]\n", f"[agent]\n{key} = {value:g}\n")
        self.config.write_text(text)

    def start_agent(self, *, python_flags: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """`mqtt-tokend run` in the background (`python_flags` go to the interpreter)."""
        self.stop_agent()
        self.process = subprocess.Popen(
            [CLI[0], *python_flags, *CLI[1:], "--config", str(self.config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.config.parent / "agent.log").open("ab"),
        )
        return self.process

    @property
    def pid(self) -> int:
        """The running agent's process id."""
        if self.process is None:
            raise RuntimeError("the agent is not running")
        return self.process.pid

    def stop_agent(self) -> None:
        """SIGTERM, and wait."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def clear_retained(self) -> None:
        """Remove every retained message the run left under its base topic (for shared brokers)."""
        seen: set[str] = set()
        client = mqtt_client(self.host, self.port)

        def collect(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
            if message.retain and message.payload:
                seen.add(message.topic)

        client.on_message = collect
        client.on_connect = lambda c, *_: c.subscribe(f"{self.base}/#", qos=1)
        client.connect(self.host, self.port)
        client.loop_start()
        time.sleep(1.0)  # retained messages arrive right after the subscription
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in sorted(seen)]
        for info in infos:
            info.wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
