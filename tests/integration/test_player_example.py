"""examples/player.py, run as a process against a real broker, agent and emulator, keeps
playing through a forced 401, a 429 and a re-login."""

from __future__ import annotations

import queue
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, login

pytestmark = pytest.mark.integration

PLAYER = Path(__file__).parents[2] / "examples" / "player.py"


class Lines:
    """A process's stdout, line by line, read on a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(target=lambda: [self._lines.put(x) for x in stream], daemon=True).start()

    def wait_for(self, words: str, timeout: float = 30.0) -> str:
        """The next line containing `words` (lines before it are kept in `seen`)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {words!r}; saw:\n{''.join(self.seen)}"
                ) from None
            self.seen.append(line)
            if words in line:
                return line


def test_the_example_player_rides_out_a_401_a_429_and_a_relogin(
    agent: AgentProcess, emulator: SpotifyEmulator
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(PLAYER),
            "--config",
            str(agent.config),
            "--rounds",
            "6",
            "--interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = Lines(process)
        assert "on LoFi Pi (Speaker)" in out.wait_for("round 1: playing")
        out.wait_for("round 1: paused")

        refreshes = emulator.calls("refresh_token")
        emulator.expire_access_tokens()  # a forced 401
        out.wait_for("round 3: paused")
        assert emulator.calls("refresh_token") == refreshes + 1

        emulator.inject("rate_limit", endpoint="player", retry_after=1)  # a 429
        out.wait_for("rate-limits /v1/me/player")
        out.wait_for("round 4: paused")

        emulator.age_logins(181 * 86400)  # Spotify ends the login after six months
        emulator.expire_access_tokens()
        needed = out.wait_for("login needed")
        assert f"--config {agent.config} auth" in needed
        assert login(agent.config).returncode == 0  # the person runs what it printed
        out.wait_for("logged in again")
        out.wait_for("done after 6 rounds")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert "Traceback" not in "".join(out.seen)


def test_the_player_line_the_demo_prints_works(tmp_path: Path) -> None:
    """`./scripts/demo --state-dir DIR` prints how to run the player; run as printed, it plays."""
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mqtt_tokend",
            "demo",
            "--state-dir",
            str(tmp_path / "demo"),
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = Lines(demo)
        line = out.wait_for("A player:").split("A player:", 1)[1]
        out.wait_for("health: ok")
        player = subprocess.run(
            [*shlex.split(line), "--rounds", "2", "--interval", "0.1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert player.returncode == 0, player.stdout + player.stderr
        assert "round 2: paused" in player.stdout
    finally:
        demo.terminate()
        demo.communicate(timeout=30)
