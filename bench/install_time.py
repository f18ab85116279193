"""How long the installer takes: an install and a purge on a staged root (setup_auto_tokens.sh
--root DIR) laid out like Debian's Mosquitto, whose broker really runs (tests/deploy/
staged_broker.py, restarted by the installer as systemctl would) and holds the agent's retained
messages when it is purged. Prints one line per step, each the median of --runs runs:

    .venv/bin/python bench/install_time.py [--runs 3]

The first install with the venv pays pip (with pip's cache warm after the first run); the others
show what the installer itself costs. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "deploy" / "setup_auto_tokens.sh"
STAGED_BROKER = REPO / "tests" / "deploy" / "staged_broker.py"
DEBIAN_MAIN = (
    "pid_file /run/mosquitto/mosquitto.pid\npersistence true\ninclude_dir /etc/mosquitto/conf.d\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Machine:
    """A staged root with Debian's Mosquitto layout and a broker of its own."""

    def __init__(self, home: Path) -> None:
        self.root, self.work, self.port = home / "root", home / "broker", free_port()
        (self.root / "etc/mosquitto/conf.d").mkdir(parents=True)
        (self.root / "etc/mosquitto/mosquitto.conf").write_text(DEBIAN_MAIN)
        self.restart = f"{sys.executable} {STAGED_BROKER} start {self.root} {self.port} {self.work}"

    def installer(self, *args: str) -> float:
        """Seconds one run of the installer took (it must succeed)."""
        env = {k: v for k, v in os.environ.items() if not k.endswith("_MQTT_PASSWORD")}
        command = [
            "bash",
            str(INSTALLER),
            "--root",
            str(self.root),
            "--broker-restart",
            self.restart,
        ]
        start = time.perf_counter()
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, check=False
        )
        took = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"installer {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return took

    def point_config_at_broker(self) -> None:
        """The staged config names port 1883 and host paths: the purge logs in with it."""
        config = self.root / "etc/mqtt-tokend/config.toml"
        text = config.read_text().replace("port = 1883", f"port = {self.port}", 1)
        config.write_text(text.replace('"/etc/mqtt-tokend/', f'"{self.root}/etc/mqtt-tokend/'))

    def leave_retained(self) -> None:
        """A retained message on each of the agent's topics, as a running agent leaves them."""
        lines = (self.root / "etc/mosquitto/mqtt-tokend/credentials").read_text().splitlines()
        password = dict(line.split(":", 1) for line in lines)["mqtt-tokend"]
        for topic in ("token", "health", "availability", "devices", "login"):
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-p",
                    str(self.port),
                    "-u",
                    "mqtt-tokend",
                    "-P",
                    password,
                    "-t",
                    f"lofi/spotify/{topic}",
                    "-m",
                    "x",
                    "-r",
                ],
                check=True,
                timeout=30,
            )

    def stop(self) -> None:
        subprocess.run([sys.executable, str(STAGED_BROKER), "stop", str(self.work)], check=False)


def measure(runs: int, step: Callable[[Machine], float]) -> float:
    times = []
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="mqtt-tokend-bench-"))
        machine = Machine(home)
        try:
            times.append(step(machine))
        finally:
            machine.stop()
            shutil.rmtree(home, ignore_errors=True)
    return statistics.median(times)


def purge_after_install(machine: Machine) -> float:
    machine.installer("--no-venv")
    machine.point_config_at_broker()
    machine.leave_retained()
    return machine.installer("--purge")


def second_install(machine: Machine) -> float:
    machine.installer()
    return machine.installer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    if shutil.which("mosquitto_passwd") is None:
        sys.exit("needs Mosquitto (apt install mosquitto mosquitto-clients)")
    rows = [
        ("install with the venv (pip)", measure(runs, lambda m: m.installer())),
        ("install again (nothing changes)", measure(runs, second_install)),
        ("install --no-venv", measure(runs, lambda m: m.installer("--no-venv"))),
        ("purge (broker cleared, files and users removed)", measure(runs, purge_after_install)),
    ]
    print(f"median of {runs} runs, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for name, seconds in rows:
        print(f"{name:<50} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
