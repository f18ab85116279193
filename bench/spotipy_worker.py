"""One baseline process: spotipy keeping its own token, asking for it about every `--poll` s.

Prints `ready`, waits for the end time (Unix seconds) on stdin, loops until then, and prints
its counts as JSON. It survives what a careful app would: an `invalid_grant` or a login
prompt is counted and the next turn of the loop reads the cache file again.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from spotipy.exceptions import SpotifyOauthError
from spotipy_side import LoginNeeded, ScaledClock, pkce, use_clock


class CacheProblems(logging.Handler):
    """Counts the warnings spotipy's CacheFileHandler logs instead of raising."""

    def __init__(self, counts: Counter[str]) -> None:
        super().__init__()
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        """A torn or empty cache file shows up as `Couldn't decode JSON`."""
        message = record.getMessage()
        self.counts["json_errors" if "decode JSON" in message else "cache_io_errors"] += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emulator", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--origin", type=float, required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--poll", type=float, required=True)
    args = parser.parse_args()

    counts: Counter[str] = Counter()
    cache_log = logging.getLogger("spotipy.cache_handler")
    cache_log.addHandler(CacheProblems(counts))
    cache_log.propagate = False
    logging.getLogger("spotipy.oauth2").setLevel(logging.CRITICAL)
    use_clock(ScaledClock(args.origin, args.scale))
    auth = pkce(args.emulator, args.cache)
    refresh, round_trips = auth.refresh_access_token, []

    def timed_refresh(refresh_token: str) -> dict[str, object]:
        started = time.perf_counter()
        try:
            return refresh(refresh_token)
        finally:
            round_trips.append(time.perf_counter() - started)

    auth.refresh_access_token = timed_refresh  # type: ignore[method-assign]

    print("ready", flush=True)
    end = float(sys.stdin.readline())
    time.sleep(random.uniform(0, args.poll))  # processes started together must not poll in step
    while time.time() < end:
        try:
            auth.get_access_token()
            counts["tokens"] += 1
        except LoginNeeded:
            counts["login_prompts"] += 1
        except SpotifyOauthError as err:
            counts["invalid_grant" if err.error == "invalid_grant" else "oauth_errors"] += 1
        except (requests.RequestException, ValueError, KeyError):
            counts["other_errors"] += 1
        time.sleep(random.uniform(0.5, 1.5) * args.poll)
    print(json.dumps({**counts, "round_trips": round_trips}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
