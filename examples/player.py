#!/usr/bin/env python3
"""An example player: shows the device, plays, pauses, and keeps going through trouble.

Every Web API call goes through `mqtt_tokend.webapi.SpotifyClient`, which takes the token
from the agent on the broker. A refused token (401) costs one refresh and one retry, a 429 is
waited out, and while Spotify's login needs a person the player says what to run and waits
for it. With the demo (`./scripts/demo --state-dir DIR`) in another terminal:

    .venv/bin/python examples/player.py --config DIR/config.toml

On a Pi the player runs as its own user, which may not read the agent's config: there, build
the client from the player's broker user and the key file (README, "Calling the Web API").
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from mqtt_tokend.config import load_config
from mqtt_tokend.errors import TokendError
from mqtt_tokend.webapi import LoginNeeded, RateLimited, SpotifyClient, WebApiError


def say(text: str) -> None:
    """One time-stamped line."""
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def one_round(spotify: SpotifyClient, number: int) -> None:
    """Show the device, play, pause."""
    devices = spotify.devices()
    active = next((d for d in devices if d.get("is_active")), devices[0] if devices else None)
    if active is None:
        say("no Spotify Connect device is online; open Spotify on one")
        return
    spotify.play(device_id=active["id"])
    state = spotify.playback() or {}
    track = (state.get("item") or {}).get("name", "?")
    say(f"round {number}: playing {track!r} on {active['name']} ({active['type']})")
    spotify.pause(device_id=active["id"])
    paused = not (spotify.playback() or {}).get("is_playing", False)
    say(f"round {number}: paused" if paused else f"round {number}: still playing")


def main() -> int:
    """Play `--rounds` rounds (0: forever), riding out 401s, 429s and a re-login."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the agent's config.toml (broker, key file, API URL)")
    parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s  %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("mqtt_tokend.webapi").setLevel(logging.INFO)  # 401s, 429s, retries
    try:
        config = load_config(args.config)
    except TokendError as err:
        print(f"player: {err}", file=sys.stderr)
        return 78
    done = 0
    waiting_for_login = False
    with SpotifyClient.connect(config) as spotify:
        while args.rounds == 0 or done < args.rounds:
            try:
                one_round(spotify, done + 1)
            except LoginNeeded as err:
                if not waiting_for_login:  # say it once, then wait for the person
                    say(f"login needed: {err.instructions}")
                waiting_for_login = True
            except RateLimited as err:
                say(f"rate-limited: waiting {err.retry_after:.0f} s")
                time.sleep(err.retry_after)
                continue
            except WebApiError as err:
                say(f"failed: {err}")
            else:
                if waiting_for_login:
                    say("logged in again: playing on")
                waiting_for_login = False
                done += 1
            time.sleep(args.interval)
    say(f"done after {done} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
