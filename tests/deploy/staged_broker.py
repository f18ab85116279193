"""Runs the Mosquitto of a staged install (setup_auto_tokens.sh --root DIR) for real: the
configuration under DIR/etc/mosquitto, every path inside DIR, the listener on port 1883 moved to
PORT (and any other listener to a free port). A configuration without any listener is Mosquitto's
local-only mode, which lets anonymous clients in on loopback: so is this one.

    python staged_broker.py start ROOT PORT WORKDIR   (re)start it; exit 1 if it does not come up
    python staged_broker.py stop WORKDIR

The installer's --broker-restart runs `start`, as systemctl restart would on a Pi. Standard
library only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"))
import broker_conf

WAIT = 10.0


def configuration(root: str, port: int, workdir: Path) -> str:
    host = broker_conf.Host(root)
    found = broker_conf.read_existing(host, ours=True)
    lines: list[str] = []
    for directive in found.directives:
        if directive.key in broker_conf.NOT_FOR_VALIDATION:
            continue
        if directive.key in {"listener", "port"}:
            number = directive.value.split()[0]
            chosen = port if number == "1883" else broker_conf.free_port()
            lines.append(f"listener {chosen} 127.0.0.1")
            continue
        lines.append(f"{directive.key} {broker_conf.rooted(host, directive.value)}")
    if not found.listeners:
        lines += [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    # Retained messages survive a restart, as on a Pi (Debian's Mosquitto persists them): a
    # restart must never hide what an uninstall left behind.
    lines += ["persistence true", f"persistence_location {workdir}/"]
    lines += [f"log_dest file {workdir / 'mosquitto.log'}"]
    if os.geteuid() == 0:
        lines.append("user root")
    return "\n".join(lines) + "\n"


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(workdir: Path) -> None:
    pidfile = workdir / "mosquitto.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


def start(root: str, port: int, workdir: Path) -> int:
    stop(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(configuration(root, port, workdir))
    process = subprocess.Popen(
        [broker_conf.mosquitto_binary() or "mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "stderr.log").open("ab"),
        start_new_session=True,
    )
    (workdir / "mosquitto.pid").write_text(str(process.pid))
    deadline = time.monotonic() + WAIT
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"the staged Mosquitto did not start:\n{conf.read_text()}", file=sys.stderr)
            stop(workdir)
            return 1
        time.sleep(0.02)
    return 0


class StagedMachine:
    """A staged machine (ROOT) and the Mosquitto that runs from its files, restarted by
    `restart` as the installer's --broker-restart does."""

    def __init__(self, root: Path, work: Path, port: int) -> None:
        self.root, self.work, self.port = root, work, port

    @property
    def restart(self) -> str:
        return f"{sys.executable} {Path(__file__)} start {self.root} {self.port} {self.work}"

    def start(self) -> None:
        result = subprocess.run(
            self.restart.split(), capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr)

    def stop(self) -> None:
        stop(self.work)

    def broker_files(self) -> dict[str, bytes]:
        """Every file under ROOT/etc/mosquitto, by its path there."""
        etc = self.root / "etc/mosquitto"
        return {str(p.relative_to(etc)): p.read_bytes() for p in etc.rglob("*") if p.is_file()}


if __name__ == "__main__":
    if sys.argv[1] == "stop":
        stop(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(start(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
