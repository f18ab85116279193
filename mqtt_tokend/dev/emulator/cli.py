"""`mqtt-tokend emulator`: run the Spotify emulator on its own until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from types import FrameType

from mqtt_tokend.dev.emulator.accounts import SIX_MONTHS
from mqtt_tokend.dev.emulator.control import CONTROL_HELP
from mqtt_tokend.dev.emulator.server import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)

_CLIENTS = (
    "accepted clients (any other client_id is refused):\n"
    f"  public (PKCE) client_id: {DEMO_CLIENT_ID}\n"
    f"  confidential client_id:  {DEMO_CONFIDENTIAL_CLIENT_ID}"
    f"  client_secret: {DEMO_CLIENT_SECRET} (a public demo secret)"
)


def _seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0 to 65535): {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqtt-tokend emulator",
        description=textwrap.fill(
            "Imitate Spotify's Accounts service (/authorize, /api/token) and the Web API calls "
            "a player makes (/v1/me, /v1/me/player, .../devices, .../play, .../pause, "
            "/v1/search, /v1/tracks/ID) on this machine. Point spotify.accounts_url and "
            "spotify.api_url at the address it prints.",
            width=90,
        ),
        epilog=f"{_CLIENTS}\n\n{CONTROL_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--token-lifetime", type=_seconds_arg, default=3600.0, help="access token lifetime, seconds"
    )
    parser.add_argument(
        "--refresh-token-max-age",
        type=_seconds_arg,
        default=SIX_MONTHS,
        help="seconds after authorization when a login's refresh tokens die (default: "
        f"{SIX_MONTHS:.0f}, six months, as Spotify)",
    )
    parser.add_argument(
        "--revoke-on-refresh",
        action="store_true",
        help="a refresh ends the login's older access tokens: they answer 401, as Spotify's do, "
        "so a consumer holding one meets a real 401",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; exit 0 then, 1 when the port cannot be opened."""
    args = _parser().parse_args(argv)
    emulator = SpotifyEmulator(
        host=args.host,
        port=args.port,
        token_lifetime=args.token_lifetime,
        refresh_token_max_age=args.refresh_token_max_age,
        revoke_on_refresh=args.revoke_on_refresh,
    )
    try:
        emulator.start()
    except OSError as err:
        print(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 1
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"Spotify emulator listening on {emulator.url}", flush=True)
        print(_CLIENTS, flush=True)
        print(f"control endpoints (see --help): URL={emulator.url}", flush=True)
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
