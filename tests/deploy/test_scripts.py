"""The shell scripts parse, and shellcheck (when installed) finds nothing to warn about."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

SCRIPTS = {
    DEPLOY / "setup_auto_tokens.sh": "bash",
    DEPLOY / "mosquitto" / "make_passwords.sh": "sh",  # POSIX: it also runs in busybox
    DEPLOY / "check_token_health.sh": "bash",
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
