"""Small helpers the integration tests share: what Spotify says to a token, token callbacks."""

from __future__ import annotations

import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mqtt_tokend.consumer import Token
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)
from tests.integration.watch import Seen


def me_status(emulator: SpotifyEmulator, token: str) -> int:
    """What the emulator's /v1/me says to this access token."""
    request = urllib.request.Request(
        f"{emulator.url}/v1/me", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code


def healthy(message: Seen) -> bool:
    """A health record in state ok."""
    return bool(message.payload) and message.json()["state"] == "ok"


class Changes:
    """Collects the tokens a consumer's `on_change` announces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: list[Token] = []

    def __call__(self, token: Token) -> None:
        with self._lock:
            self.tokens.append(token)

    def access_tokens(self) -> list[str]:
        with self._lock:
            return [t.access_token for t in self.tokens]


def mosquitto_pub(
    broker: PrivateMosquitto, topic: str, *args: str, stdin: str | None = None
) -> None:
    """Publish with the real `mosquitto_pub` (no payload unless `args` give one: `-n`)."""
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            *(args or ("-n",)),
        ],
        input=stdin,
        text=True,
        check=True,
        timeout=20,
    )


def state_is(*states: str) -> Callable[[Seen], bool]:
    """A health record in one of these states."""

    def accept(message: Seen) -> bool:
        return bool(message.payload) and message.json()["state"] in states

    return accept


def report(what: str, seconds: float) -> None:
    """A figure for the closing note (`pytest -s` shows it)."""
    print(f"\n[noticed] {what}: {seconds:.2f} s")


def set_in_config(config: Path, key: str, value: str) -> None:
    """Replace `key = ...` (its first occurrence) in a test config."""
    text = config.read_text()
    start = text.index(f"\n{key} = ") + 1
    end = text.index("\n", start)
    config.write_text(text[:start] + f"{key} = {value}" + text[end:])
    config.chmod(0o600)


def make_confidential(config: Path) -> Path:
    """The test config with the emulator's confidential client (it has a secret)."""
    text = config.read_text().replace(
        "[spotify]\n", f'[spotify]\nclient_secret = "{DEMO_CLIENT_SECRET}"\n', 1
    )
    config.write_text(text)
    set_in_config(config, "client_id", f'"{DEMO_CONFIDENTIAL_CLIENT_ID}"')
    return config
