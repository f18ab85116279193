"""`mqtt-tokend run` that kills itself (SIGKILL) at one step of its first forced refresh.

    python tests/crash_agent.py STEP --config PATH run

STEP: `response` (Spotify answered, nothing written), `tokens` (spotify_tokens.json written),
`backup` (the backup written too), `published` (the new token handed to the MQTT client).
The steps are found by wrapping the real functions; the agent's code is not changed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from mqtt_tokend.adapters import spotify, store
from mqtt_tokend.cli import main as cli
from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.daemon import broadcast

STEP = sys.argv.pop(1)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def after(module: Any, name: str, when: Any = lambda *_a, **_k: True) -> None:
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            die()
        return result

    setattr(module, name, wrapper)


def is_file(name: str) -> Any:
    return lambda path, *_a, **_k: Path(path).name == name


if STEP == "response":
    after(spotify.SpotifyClient, "refresh")
elif STEP == "tokens":
    after(store, "write_json", is_file(store.TOKENS_FILE))
elif STEP == "backup":
    after(store, "write_json", is_file(store.BACKUP_FILE))
elif STEP == "published":
    refreshed: list[bool] = []
    original_refresh = spotify.SpotifyClient.refresh

    def refresh(self: spotify.SpotifyClient, refresh_token: str) -> TokenGrant:
        grant = original_refresh(self, refresh_token)
        refreshed.append(True)
        return grant

    spotify.SpotifyClient.refresh = refresh  # type: ignore[method-assign]
    after(broadcast.Broadcaster, "token", lambda *_a, **k: bool(refreshed) and k["kind"] == "user")
else:
    raise SystemExit(f"unknown step {STEP}")

sys.exit(cli.main(sys.argv[1:]))
