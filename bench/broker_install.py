"""How long the broker step of an install takes, on staged machines (--root) whose Mosquitto
really runs and is restarted by the install: Debian's stock broker, and a Home Assistant broker
with zigbee2mqtt (merged into its own password file and ACL, --ha-user hass). Prints the median
of a few runs of `setup_broker.py` (read, plan, prove, throwaway broker, write, restart) and of
the whole `setup_auto_tokens.sh --root DIR --no-venv` (users, config, units, the broker step).

    .venv/bin/python bench/broker_install.py [RUNS]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.deploy.conftest import free_port  # noqa: E402
from tests.deploy.staged_broker import StagedMachine  # noqa: E402

LOCAL = (
    "listener 1883\nallow_anonymous false\n"
    "password_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n"
)
ACL = (
    "user hass\ntopic read #\ntopic write homeassistant/status\ntopic write zigbee2mqtt/+/set\n\n"
    "user zigbee2mqtt\ntopic readwrite zigbee2mqtt/#\ntopic readwrite homeassistant/#\n"
)


def staged(directory: Path, *, home_assistant: bool) -> StagedMachine:
    machine = StagedMachine(directory / "root", directory / "broker", free_port())
    etc = machine.root / "etc/mosquitto"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "mosquitto.conf").write_text("include_dir /etc/mosquitto/conf.d\n")
    if home_assistant:
        (etc / "conf.d/local.conf").write_text(LOCAL)
        (etc / "acl").write_text(ACL)
        for number, user in enumerate(("hass", "zigbee2mqtt")):
            command = ["mosquitto_passwd", *([] if number else ["-c"]), "-b", str(etc / "passwd")]
            subprocess.run([*command, user, f"{user}-pw"], check=True, capture_output=True)
        for path in etc.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    machine.start()
    return machine


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def one(kind: str, home_assistant: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="mqtt-tokend-bench-") as scratch:
        directory = Path(scratch)
        directory.chmod(0o755)
        machine = staged(directory, home_assistant=home_assistant)
        try:
            ha = ["--ha-user", "hass"] if home_assistant else []
            if kind == "setup_broker.py":
                script = REPO / "deploy/mosquitto/setup_broker.py"
                command = [sys.executable, str(script), "--root", str(machine.root)]
                command += ["--deploy", str(REPO / "deploy"), "--restart", machine.restart, *ha]
            else:
                command = ["bash", str(REPO / "deploy/setup_auto_tokens.sh")]
                command += ["--root", str(machine.root), "--no-venv"]
                command += ["--broker-restart", machine.restart, *ha]
            return timed(command)
        finally:
            machine.stop()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if shutil.which("mosquitto_passwd") is None:
        raise SystemExit("Mosquitto is not installed")
    print(f"| install step ({runs} runs, median) | stock Debian broker | HA + zigbee2mqtt broker |")
    print("|---|---|---|")
    for kind in ("setup_broker.py", "setup_auto_tokens.sh --no-venv"):
        cells = [
            statistics.median(one(kind, home_assistant) for _ in range(runs))
            for home_assistant in (False, True)
        ]
        print(f"| {kind} | {cells[0]:.2f} s | {cells[1]:.2f} s |")


if __name__ == "__main__":
    main()
