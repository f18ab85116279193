"""How fast a consumer heals a 401, and what it costs Spotify: SpotifyClient and spotipy.

Each run makes every access token the emulator issued answer 401 (`/_emulator/expire`), then
times one call from its start (it meets the 401) to the successful answer of its retry, and
counts what reached the emulator meanwhile. Real components on loopback: a private
Mosquitto, the emulator, `mqtt-tokend auth` and `mqtt-tokend run` as processes.

    .venv/bin/python bench/heal.py [--runs 50]

spotipy comes from `pip install -e '.[spotipy]'` (or the test extra); without it that row
is skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Rig, loadavg, percentile

from mqtt_tokend.config import load_config
from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.dev.emulator.httpd import COUNTER_NAMES
from mqtt_tokend.dev.emulator.webapi import API_ENDPOINTS
from mqtt_tokend.webapi import SpotifyClient, TokendAuthManager

ENDPOINTS = ("token", *API_ENDPOINTS)


def heal_runs(
    emulator: SpotifyEmulator, call: Callable[[], Any], runs: int
) -> tuple[list[float], Counter[str], int]:
    """Times of `runs` healed calls, the requests they made in total (and, as "exact", how many
    heals cost one refresh and at most one retry), and the most requests of one heal."""
    call()  # connected and holding a token
    times: list[float] = []
    total: Counter[str] = Counter()
    worst = 0
    for _ in range(runs):
        emulator.reset_stats()
        emulator.expire_access_tokens()
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        counts = Counter({name: emulator.calls(name) for name in COUNTER_NAMES})
        total.update(counts)
        total["exact"] += counts["refresh_token"] == 1 and counts["player"] in (0, 2)
        worst = max(worst, sum(counts[name] for name in ENDPOINTS))
    return times, total, worst


def row(name: str, times: list[float], total: Counter[str], worst: int, runs: int) -> str:
    """One line of the table."""
    per = {key: total[key] / runs for key in ("refresh_token", "player")}
    others = ", ".join(
        f"{key} {total[key] / runs:.2f}"
        for key in ENDPOINTS
        if key not in ("token", "player") and total[key]
    )
    return (
        f"| {name} | {percentile(times, 50) * 1000:.2f} ms | {percentile(times, 90) * 1000:.2f} ms"
        f" | {per['refresh_token']:.2f} | {per['player']:.2f} | {others or 'none'} | {worst} "
        f"| {total['exact']} of {runs} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="healed calls per client")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, load average {loadavg()} at the start"
    )
    work = Path(tempfile.mkdtemp(prefix="mqtt-tokend-heal-"))
    try:
        with (
            PrivateMosquitto(work / "broker") as mosquitto,
            SpotifyEmulator(token_lifetime=3600) as emulator,
        ):
            rig = Rig(
                work / "agent",
                host=mosquitto.host,
                port=mosquitto.port,
                emulator_url=emulator.url,
                token_lifetime=3600,
                agent={"refresh_early_seconds": 600, "check_interval": 600},
            )
            rig.start_agent()
            try:
                config = load_config(rig.config)
                lines = []
                with SpotifyClient.connect(config) as client:
                    times, total, worst = heal_runs(emulator, client.playback, args.runs)
                lines.append(row("SpotifyClient", times, total, worst, args.runs))
                with TokenConsumer(config) as consumer:

                    def agent_share() -> None:
                        consumer.report_rejected(consumer.token(timeout=10))
                        consumer.token(timeout=10)

                    consumer.token(timeout=10)
                    times, total, worst = heal_runs(emulator, agent_share, args.runs)
                lines.append(
                    row("(the agent's share: report to new token)", times, total, worst, args.runs)
                )
                try:
                    import spotipy  # type: ignore[import-untyped]
                except ImportError:
                    print("spotipy is not installed: pip install -e '.[spotipy]'", file=sys.stderr)
                else:
                    manager = TokendAuthManager(config)
                    sp = spotipy.Spotify(auth_manager=manager)
                    sp.prefix = f"{emulator.url}/v1/"
                    times, total, worst = heal_runs(emulator, sp.current_playback, args.runs)
                    manager.stop()
                    lines.append(row("spotipy + TokendAuthManager", times, total, worst, args.runs))
            finally:
                rig.stop_agent()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.runs} forced 401s each (every issued access token expired at the emulator):\n")
    print(
        "| client | forced 401 to successful retry, p50 | p90 | refresh calls per heal "
        "| /v1/me/player calls per heal (the 401, the retry) | other calls per heal "
        "| most requests in one heal | heals with 1 refresh and 1 retry |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
