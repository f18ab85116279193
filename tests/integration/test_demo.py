"""`mqtt-tokend demo` as a new user runs it: everything starts, refreshes show, it stops."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.conftest import CLI

pytestmark = pytest.mark.integration


def test_demo_logs_in_refreshes_live_and_stops_cleanly() -> None:
    result = subprocess.run(
        [*CLI, "demo", "--duration", "9", "--token-lifetime", "4", "--private-broker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Logged in to Spotify as" in out
    assert re.search(r"mosquitto_sub -p \d+ -v -t 'lofi/spotify/#'", out)
    assert re.search(r"mosquitto_pub -p \d+ -t lofi/spotify/request/refresh -n", out)
    assert "availability: online" in out
    tokens = re.findall(r"token: access token sha256:([0-9a-f]{12})", out)
    assert len(set(tokens)) >= 3, out  # the first token and at least two refreshes
    assert "health: ok (token refreshed)" in out
    assert "agent stopped (exit 0)" in out
    assert "Traceback" not in out + result.stderr
