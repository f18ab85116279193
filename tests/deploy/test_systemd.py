"""The systemd units (deploy/systemd/) and the cron alternative (deploy/cron/): systemd's own
verifier accepts them, the sandbox scores at most 1.5 on `systemd-analyze security`, and they
run what the installer installs, as the user it creates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt install systemd)"
)

BINARY = "/opt/mqtt-tokend/venv/bin/mqtt-tokend"
CLI = f"{BINARY} --config /etc/mqtt-tokend/config.toml"
UNITS = sorted(p.name for p in (DEPLOY / "systemd").iterdir())
SERVICES = [
    "lofi-pi-token-manager.service",
    "lofi-pi-token-manager@alice.service",
    "lofi-pi-token-health.service",
]
MAX_EXPOSURE = 1.5


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYSTEMD_ANALYZE), *args], capture_output=True, text=True, timeout=60, check=False
    )


def directives(unit: str) -> dict[str, list[str]]:
    """'Section.Key' -> every value it is given, in order (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in (DEPLOY / "systemd" / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """The shipped units, with ExecStart's binary (not installed here) swapped for a script
    that exists: `verify` insists on an executable, and nothing else may differ."""
    fake = tmp_path / "bin" / "mqtt-tokend"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        if name.endswith(".service"):
            assert f"ExecStart={BINARY} " in text
        (units / name).write_text(text.replace(f"ExecStart={BINARY} ", f"ExecStart={fake} "))
    return units


def test_systemd_verify_accepts_every_unit(unit_dir: Path) -> None:
    """No error and no warning (an unknown or misspelt key is a warning, which we refuse)."""
    targets = [str(unit_dir / name) for name in UNITS if "@." not in name]
    targets.append(str(unit_dir / "lofi-pi-token-manager@alice.service"))  # via the template
    result = analyze("verify", *targets)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_sandbox_exposure_is_at_most_1_5(unit_dir: Path, service: str) -> None:
    result = analyze("security", "--offline=yes", str(unit_dir / service))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure figure in:\n{result.stdout}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"{service}: exposure {exposure}\n{result.stdout}"


def test_agent_service_runs_the_installed_agent_in_a_strict_sandbox() -> None:
    unit = directives("lofi-pi-token-manager.service")
    assert unit["Service.ExecStart"] == [f"{CLI} run"]
    assert unit["Service.User"] == unit["Service.Group"] == ["mqtt-tokend"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.RestartPreventExitStatus"] == ["78"], "a config error is not retried"
    assert unit["Service.StateDirectory"] == ["mqtt-tokend"]
    assert unit["Service.StateDirectoryMode"] == ["0700"]
    assert unit["Service.UMask"] == ["0077"]
    assert unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.PrivateTmp"] == unit["Service.PrivateDevices"] == ["yes"]
    assert unit["Service.NoNewPrivileges"] == ["yes"]
    assert unit["Service.CapabilityBoundingSet"] == [""]
    assert set(unit["Service.RestrictAddressFamilies"][0].split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
    }
    assert unit["Service.SystemCallFilter"][0] == "@system-service"
    assert "Service.ReadWritePaths" not in unit, "the state directory is the only writable path"
    assert unit["Install.WantedBy"] == ["multi-user.target"]


def test_template_gives_each_account_its_config_and_state_dir() -> None:
    single = directives("lofi-pi-token-manager.service")
    template = directives("lofi-pi-token-manager@.service")
    assert template["Service.ExecStart"] == [f"{BINARY} --config /etc/mqtt-tokend/%i.toml run"]
    assert template["Service.StateDirectory"] == ["mqtt-tokend/%i"]
    same = {k: v for k, v in single.items() if k.startswith("Service.")}
    for key in ("Service.ExecStart", "Service.StateDirectory"):
        same.pop(key)
    assert {k: template[k] for k in same} == same, "the same sandbox for every account"


def test_health_check_every_30_minutes_by_timer_and_by_cron() -> None:
    service = directives("lofi-pi-token-health.service")
    timer = directives("lofi-pi-token-health.timer")
    agent = directives("lofi-pi-token-manager.service")
    assert service["Service.ExecStart"] == [f"{CLI} health-check"]
    assert service["Service.Type"] == ["oneshot"]
    assert service["Service.User"] == ["mqtt-tokend"]
    assert service["Service.StateDirectory"] == agent["Service.StateDirectory"]
    assert timer["Timer.OnUnitActiveSec"] == ["30min"]
    assert timer["Timer.Unit"] == ["lofi-pi-token-health.service"]
    assert "Timer.OnCalendar" not in timer, "monotonic: the Pi's wall clock jumps at boot"
    assert timer["Install.WantedBy"] == ["timers.target"]

    entries = [
        line
        for line in (DEPLOY / "cron" / "mqtt-tokend").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(entries) == 1
    fields = entries[0].split(maxsplit=6)
    assert fields[:5] == ["*/30", "*", "*", "*", "*"]
    assert fields[5] == "mqtt-tokend"
    assert fields[6].startswith(f"{CLI} health-check")


@pytest.mark.parametrize(
    "unit", ["lofi-pi-token-manager.service", "lofi-pi-token-manager@.service"]
)
def test_agent_units_use_the_notify_protocol_and_the_watchdog(unit: str) -> None:
    """READY=1 from the agent's own process, and a restart when its loop stops pinging."""
    service = directives(unit)
    assert service["Service.Type"] == ["notify"]
    assert service["Service.NotifyAccess"] == ["main"]
    assert service["Service.WatchdogSec"] == ["60s"]
    assert service["Service.Restart"] == ["on-failure"], "a watchdog kill is a failure"


@pytest.mark.parametrize("service", [u for u in UNITS if u.endswith(".service")])
def test_every_service_has_a_memory_ceiling(service: str) -> None:
    """One oversized message or a flood must not take the Pi's memory: the kernel stops the
    unit at MemoryMax (128 MiB, against about 50 MiB in use)."""
    unit = directives(service)
    assert unit["Service.MemoryMax"] == ["128M"]
    assert unit["Service.MemoryHigh"] == ["96M"]
    assert unit["Service.MemorySwapMax"] == ["0"]
