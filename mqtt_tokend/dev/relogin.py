"""`mqtt-tokend demo --relogin`: the twice-yearly re-login, end to end, in about ten seconds.

Spotify ends every login six months after it was authorized. The scene ages the demo's login
at the emulator past that, asks the agent to refresh, shows it going to `auth_required` with
the command to run, runs that command (`mqtt-tokend auth`, approved by the emulator) as a
person would, and shows the agent back at `ok` without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from mqtt_tokend.dev.emulator import SpotifyEmulator

SIX_MONTHS_AND_A_DAY = 181 * 86400.0
SCENE_TIMEOUT = 60.0


class States:
    """The health states the demo has seen, for a scene to wait on."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._seen: list[tuple[float, str]] = []

    def add(self, state: str) -> None:
        """Note a health state as it arrives."""
        with self._lock:
            self._seen.append((time.monotonic(), state))
            self._lock.notify_all()

    def wait_for(self, state: str, *, after: float, timeout: float = SCENE_TIMEOUT) -> bool:
        """True once `state` was seen after `after` (monotonic); False after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not any(at >= after and seen == state for at, seen in self._seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True


def relogin_scene(
    *,
    emulator: SpotifyEmulator,
    config: Path,
    states: States,
    ask_refresh: Callable[[], None],
    login: Callable[[], None],
    say: Callable[[str], None],
) -> bool:
    """Play the scene; False (having said why) when a step did not happen in time."""
    if not states.wait_for("ok", after=0.0):
        say("re-login scene: the agent never reached ok; skipping it")
        return False
    say("re-login scene: Spotify ends every login six months after it was authorized.")
    started = time.monotonic()
    emulator.age_logins(SIX_MONTHS_AND_A_DAY)
    say(
        "re-login scene: the emulator now counts the demo's login 181 days old; asking the "
        "agent to refresh"
    )
    ask_refresh()
    if not states.wait_for("auth_required", after=started):
        say("re-login scene: the agent did not ask for a login within a minute")
        return False
    say(f"re-login scene: a person now runs what health says: mqtt-tokend --config {config} auth")
    relogged = time.monotonic()
    login()
    if not states.wait_for("ok", after=relogged):
        say("re-login scene: the agent did not pick the new login up within a minute")
        return False
    say(
        f"re-login scene: ok again {time.monotonic() - started:.1f} s after the login ended, "
        "without restarting the agent"
    )
    return True
