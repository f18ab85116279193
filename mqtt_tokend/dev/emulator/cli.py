"""`mqtt-tokend emulator`: run the Spotify emulator on its own until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from mqtt_tokend.dev.emulator.server import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)


def _seconds(text: str) -> float:
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
        description="Imitate Spotify's Accounts service and Web API on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--token-lifetime", type=_seconds, default=3600.0, help="access token lifetime, seconds"
    )
    parser.add_argument(
        "--refresh-token-max-age",
        type=_seconds,
        default=None,
        help="seconds after authorization when refresh tokens die (default: never)",
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
        print(f"  public (PKCE) client_id: {DEMO_CLIENT_ID}", flush=True)
        print(
            f"  confidential client_id:  {DEMO_CONFIDENTIAL_CLIENT_ID}"
            f"  client_secret: {DEMO_CLIENT_SECRET} (a public demo secret)",
            flush=True,
        )
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
