"""spotipy, unmodified, pointed at the emulator on a clock that runs `scale` times fast.

The baseline keeps spotipy's own logic: its 60-second expiry margin, its whole-second
`expires_at`, its `CacheFileHandler`. Only time is sped up (one simulated hour per `sim_hour`
real seconds, the same clock for the emulator and for spotipy) and the token URL is the
emulator's. Shared by the benchmark (to log in) and `spotipy_worker` (the processes).
"""

from __future__ import annotations

import time
from pathlib import Path

import spotipy.oauth2
from spotipy.cache_handler import CacheFileHandler

from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator

REDIRECT_URI = "http://127.0.0.1:8888/callback"
SCOPE = "user-read-playback-state"
HOUR = 3600.0


class LoginNeeded(Exception):
    """spotipy asked a person to log in again (a headless service stops here)."""


class ScaledClock:
    """Stands in for the `time` module in spotipy: wall time running `scale` times faster."""

    def __init__(self, origin: float, scale: float) -> None:
        self.origin, self.scale = origin, scale

    def time(self) -> float:
        """Simulated Unix seconds."""
        return self.origin + (time.time() - self.origin) * self.scale


def use_clock(clock: ScaledClock) -> None:
    """Make spotipy's token logic run on `clock` (its only use of `time` is `time.time()`)."""
    spotipy.oauth2.time = clock  # type: ignore[assignment]


def pkce(base_url: str, cache_path: Path) -> spotipy.oauth2.SpotifyPKCE:
    """A `SpotifyPKCE` with a file cache, talking to the emulator at `base_url`."""

    class EmulatedPKCE(spotipy.oauth2.SpotifyPKCE):
        OAUTH_AUTHORIZE_URL = f"{base_url}/authorize"
        OAUTH_TOKEN_URL = f"{base_url}/api/token"

        @staticmethod
        def _get_user_input(prompt: str) -> str:
            raise LoginNeeded(prompt)

    return EmulatedPKCE(
        client_id=DEMO_CLIENT_ID,
        redirect_uri=REDIRECT_URI,
        scope=SCOPE,
        cache_handler=CacheFileHandler(cache_path=str(cache_path)),
        open_browser=False,
        requests_timeout=10,
    )


def log_in(emulator: SpotifyEmulator, cache_path: Path) -> None:
    """A PKCE login approved at once by the emulator; spotipy writes its own cache file."""
    auth = pkce(emulator.url, cache_path)
    auth.get_pkce_handshake_parameters()
    redirect = emulator.authorize(
        client_id=DEMO_CLIENT_ID,
        redirect_uri=REDIRECT_URI,
        state="bench",
        scope=SCOPE,
        code_challenge=auth.code_challenge,
    )
    auth.get_access_token(code=auth.parse_response_code(redirect), check_cache=False)
