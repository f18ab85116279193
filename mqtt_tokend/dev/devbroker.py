"""A private Mosquitto for the demo and the tests: own port, own config, start/stop/restart."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from mqtt_tokend.errors import BrokerError

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT = 10.0


def find_mosquitto() -> str:
    """The mosquitto binary, or BrokerError telling how to install it."""
    for candidate in MOSQUITTO_PATHS:
        if Path(candidate).is_file():
            return candidate
    found = shutil.which("mosquitto")
    if found:
        return found
    raise BrokerError(
        "Mosquitto is not installed: sudo apt-get install -y mosquitto mosquitto-clients"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PrivateMosquitto:
    """A Mosquitto process with a generated config in `workdir`.

    `extra_config` lines are appended to the generated listener section, so tests can add
    password files, ACLs or TLS listeners of their own.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        extra_config: str = "",
        anonymous: bool = True,
    ) -> None:
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._extra = extra_config
        self._anonymous = anonymous
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"

    def write_config(self) -> Path:
        """Write the broker's config file."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self._anonymous else 'false'}",
            "set_tcp_nodelay true",
            "persistence false",
            # A test that watches `<base>/#` through a burst of 1,000 requests receives 2,000
            # messages at once; Mosquitto's default queue of 1,000 per client would drop some.
            "max_queued_messages 100000",
            self._extra,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def start(self) -> PrivateMosquitto:
        """Start and wait (with a deadline) until it accepts connections."""
        self.write_config()
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self._process.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on port {self.port} in time")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Terminate and wait."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start on the same port (retained messages are lost: no persistence)."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the broker holds its connections open and answers nothing."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL and wait, as a power cut would end it (a frozen broker too)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
