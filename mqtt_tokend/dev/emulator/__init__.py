"""A Spotify emulator: the Accounts service and the Web API calls the agent uses, on loopback.

Real HTTP (standard library only), with fault injection, so tests and the demo never need
Spotify. `SpotifyEmulator` is the Python API; `main` is `mqtt-tokend emulator`; the same
controls are HTTP endpoints under /_emulator/ for tests that run the agent as a subprocess.
"""

from mqtt_tokend.dev.emulator.accounts import AuthorizeError
from mqtt_tokend.dev.emulator.cli import main
from mqtt_tokend.dev.emulator.faults import FAULT_ENDPOINTS, FAULT_KINDS
from mqtt_tokend.dev.emulator.server import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_CONFIDENTIAL_CLIENT_ID",
    "FAULT_ENDPOINTS",
    "FAULT_KINDS",
    "AuthorizeError",
    "SpotifyEmulator",
    "main",
]
