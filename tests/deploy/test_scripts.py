"""The shell scripts parse, and shellcheck (when installed) finds nothing to warn about."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

SCRIPTS = {
    DEPLOY / "setup_auto_tokens.sh": "bash",
    DEPLOY / "mosquitto" / "make_passwords.sh": "sh",  # POSIX: it also runs in busybox
    DEPLOY / "check_token_health.sh": "bash",
    DEPLOY / "bin" / "mqtt-tokend": "sh",  # /usr/local/bin/mqtt-tokend
    DEPLOY.parent / "scripts" / "bootstrap.sh": "bash",
    DEPLOY.parent / "scripts" / "node_deps.sh": "bash",
    DEPLOY.parent / "docs" / "examples" / "consumer.sh": "bash",
}


@pytest.mark.parametrize(("script", "shell"), SCRIPTS.items(), ids=[p.name for p in SCRIPTS])
def test_script_parses_and_is_executable(script: Path, shell: str) -> None:
    result = subprocess.run(
        [shell, "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert script.stat().st_mode & 0o111, "chmod +x"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean() -> None:
    result = subprocess.run(
        ["shellcheck", "--external-sources", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def source(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`. script` in bash, as scripts/demo and scripts/test do."""
    return subprocess.run(
        ["bash", "-c", f'. "{script}"'],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_demo_setup_installs_the_product_without_the_test_tools(tmp_path: Path) -> None:
    """./scripts/demo's set-up (bootstrap.sh without MQTT_TOKEND_DEV) installs the runtime
    dependencies only, saying what it does one line per step; the test extras are ./scripts/test's.
    """
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "MQTT_TOKEND_DEV"}
    env["MQTT_TOKEND_VENV"] = str(venv)
    bootstrap = DEPLOY.parent / "scripts" / "bootstrap.sh"
    result = source(bootstrap, env)
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stderr.splitlines() if line.startswith("[setup] ")]
    assert steps[:2] == [
        f"[setup] creating the virtual environment {venv}",
        f"[setup] installing mqtt-tokend (runtime dependencies) into {venv}",
    ]
    listed = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert {"paho-mqtt", "requests", "cryptography", "mqtt-tokend"} <= installed
    assert installed.isdisjoint({"pytest", "mypy", "ruff", "hypothesis"}), installed
    again = source(bootstrap, env)
    assert again.returncode == 0 and "[setup]" not in again.stderr, "a second run does nothing"
