"""Benchmark of the running agent on loopback: prints one markdown table of measured figures.

    .venv/bin/python bench/bench.py [--quick] [--idle 60] [--stock-broker] [--no-baseline]
    .venv/bin/python bench/bench.py --only imports    # start-up cost alone, in under a minute

Starts the Spotify emulator, a private Mosquitto (`set_tcp_nodelay true`) unless
--stock-broker uses the one on 127.0.0.1:1883, logs in with the real `auth` command and runs
the real agent as a subprocess. Figures, each beside its target: cold start to the
first retained token; `request/refresh` to the new retained token at a subscriber (p50, p99);
the same to all of 50 subscribers (fan-out); Spotify calls for a burst of 1,000 refresh
requests; `get-token` wall time; the import time and memory of `get-token` and of the agent
(`startup`); resident memory and CPU after an idle spell; and the
baseline users have today (spotipy in N processes: one shared cache file, a login each, or
copies of one login) beside the agent with N consumers, over simulated hours (see
`baseline`; `pip install -r bench/requirements.txt`). --quick runs each figure once or twice
in seconds, to show the harness works (tests/integration/test_bench.py runs it).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import figures
import startup
from baseline import HOUR, MODES, ours, spotipy_baseline
from harness import Rig, Watch, loadavg

from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator

Row = tuple[str, str, str]
FULL = {
    "refreshes": 200,
    "fanout_runs": 100,
    "get_token_runs": 10,
    "startup_runs": 10,
    "fanout_subscribers": 50,
    "fanout_processes": 5,
    "burst": 1000,
    "idle": 60.0,
    "hours": 20.0,
}
# Seconds, not minutes: every figure once or twice, so CI sees the harness work (the figures
# themselves mean little on a busy CI machine; README's come from the full run).
QUICK = {
    "refreshes": 5,
    "fanout_runs": 2,
    "fanout_subscribers": 10,
    "fanout_processes": 2,
    "burst": 100,
    "get_token_runs": 1,
    "startup_runs": 1,
    "idle": 1.0,
    "hours": 1.0,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="seconds: each figure once or twice (CI runs it)"
    )
    parser.add_argument(
        "--only",
        choices=["imports"],
        help="imports: only get-token's and the agent's import time and memory (no baseline)",
    )
    parser.add_argument("--startup-runs", type=int, help="runs per start-up figure (10; quick 1)")
    parser.add_argument("--refreshes", type=int, help="refresh-latency runs (200; quick 5)")
    parser.add_argument("--fanout-subscribers", type=int, help="(50; quick 10)")
    parser.add_argument("--fanout-processes", type=int, help="they are spread over (5; quick 2)")
    parser.add_argument("--fanout-runs", type=int, help="fan-out refreshes (100; quick 2)")
    parser.add_argument("--get-token-runs", type=int, help="get-token runs (10; quick 1)")
    parser.add_argument("--idle", type=float, help="idle seconds before RSS/CPU (60; quick 1)")
    parser.add_argument("--stock-broker", action="store_true", help="use 127.0.0.1:1883")
    parser.add_argument("--no-baseline", action="store_true", help="skip the spotipy baseline")
    parser.add_argument(
        "--baseline-processes",
        default=None,
        help="comma-separated process counts for the baseline (5,10; quick 2)",
    )
    parser.add_argument("--baseline-hours", type=float, help="simulated hours (20; quick 1)")
    parser.add_argument(
        "--sim-hour", type=float, default=2.0, help="real seconds per simulated hour (2)"
    )
    parser.add_argument(
        "--poll-ms", type=float, default=20.0, help="how often each process asks for its token"
    )
    parser.add_argument(
        "--no-rotation",
        action="store_true",
        help="PKCE refresh tokens are not single-use (Spotify since 2026-06-18)",
    )
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    if args.only:
        args.no_baseline = True
    for key in (
        "refreshes",
        "fanout_runs",
        "fanout_subscribers",
        "fanout_processes",
        "get_token_runs",
        "startup_runs",
        "idle",
    ):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    args.burst = defaults["burst"]
    if args.baseline_hours is None:
        args.baseline_hours = defaults["hours"]
    counts = args.baseline_processes or ("2" if args.quick else "5,10")
    args.baseline_processes = [int(n) for n in counts.split(",")]
    return args


def agent_figures(args: argparse.Namespace, work: Path, host: str, port: int) -> list[Row]:
    """Everything measured on one agent with hour-long tokens."""
    target = "<= 45 ms (stock Mosquitto)" if args.stock_broker else "<= 6 ms (shipped config)"
    rows: list[Row] = []
    with SpotifyEmulator(token_lifetime=3600) as emulator:
        rig = Rig(
            work / "agent",
            host=host,
            port=port,
            emulator_url=emulator.url,
            token_lifetime=3600,
            # every request refreshes; no health check lands inside a measurement
            agent={"min_refresh_interval": 0, "check_interval": 3600},
        )
        watch = Watch(host, port, rig.topic("token"))
        try:
            rows += figures.cold_start(rig, watch)
            if args.only == "imports":
                rows += figures.get_token(rig, args.get_token_runs)
                rows += startup.get_token(rig, args.startup_runs)
                rows += startup.agent(rig, watch, args.startup_runs)
                return rows
            rows += figures.refresh_latency(rig, watch, args.refreshes, target=target)
            rows += figures.fanout(
                rig, watch, args.fanout_subscribers, args.fanout_processes, args.fanout_runs
            )
            rows += figures.burst(rig, watch, emulator, args.burst)
            rows += figures.get_token(rig, args.get_token_runs)
            rows += startup.get_token(rig, args.startup_runs)
            rows += startup.agent(rig, watch, args.startup_runs)  # leaves an agent running
            if args.idle > 0:
                rows += figures.idle(rig, args.idle)
        finally:
            rig.stop_agent()
            watch.close()
            rig.clear_retained()
    return rows


def baseline_figures(
    args: argparse.Namespace, work: Path, host: str, port: int
) -> tuple[list[Row], list[str]]:
    """spotipy in N processes (three ways) and the agent with N consumers; rows and notes."""
    try:
        import spotipy  # noqa: F401
    except ImportError:
        return [("baseline: spotipy", "skipped: pip install -r bench/requirements.txt", "")], []
    rows: list[Row] = []
    round_trips: list[float] = []
    common = {
        "hours": args.baseline_hours,
        "sim_hour": args.sim_hour,
        "poll": args.poll_ms / 1000,
        "rotate": not args.no_rotation,
    }
    for n in args.baseline_processes:
        for mode in MODES:
            row, times = spotipy_baseline(
                work / f"spotipy-{n}-{mode}", processes=n, mode=mode, **common
            )
            rows.append(row)
            round_trips += times
        rows.append(ours(work / f"ours-{n}", host=host, port=port, processes=n, **common))
    notes = [
        f"spotipy and mqtt-tokend rows: {args.baseline_hours:g} simulated hours of "
        f"{args.sim_hour:g} s (one token lifetime each); every process asks for its token about "
        f"every {args.poll_ms:g} ms; spotipy's refresh round trip to the emulator: p50 "
        f"{statistics.median(round_trips or [math.nan]) * 1000:.1f} ms; PKCE refresh tokens "
        + ("are not rotated (Spotify since 2026-06-18)." if args.no_rotation else "single-use."),
        "spotipy runs unmodified on a clock sped up "
        f"{HOUR / args.sim_hour:g} times (its 60 s expiry margin intact); the agent gets real "
        f"{args.sim_hour:g} s tokens and refreshes 40 % before expiry (TokenConsumer stops "
        "handing out the last quarter of so short a token), so one call per 0.6 h; "
        "with the shipped 600 s of 3600 s it is 1.2 calls/h.",
    ]
    return rows, notes


def print_table(
    args: argparse.Namespace, rows: list[Row], notes: list[str], load_start: str
) -> None:
    """The heading line (machine, load, broker), the table and its notes."""
    broker = (
        "stock Mosquitto on 127.0.0.1:1883"
        if args.stock_broker
        else "private Mosquitto with set_tcp_nodelay true"
    )
    print(
        f"\nmqtt-tokend benchmark ({args.only or ('quick' if args.quick else 'full')}): "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load_start} at start ({loadavg()} at the end), {broker}, "
        f"bytecode cache {'off (PYTHONDONTWRITEBYTECODE)' if sys.dont_write_bytecode else 'on'}\n"
    )
    header = ("figure", "measured", "target")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    for note in notes:
        print(f"\n{note}")


def main() -> int:
    args = parse_args()
    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="mqtt-tokend-bench-"))
    mosquitto = None if args.stock_broker else PrivateMosquitto(work / "broker").start()
    host, port = ("127.0.0.1", 1883) if mosquitto is None else (mosquitto.host, mosquitto.port)
    started = time.monotonic()
    try:
        rows, notes = agent_figures(args, work, host, port), []
        if not args.no_baseline:
            more, notes = baseline_figures(args, work, host, port)
            rows += more
    except BaseException:
        print(f"the benchmark failed; agent logs are under {work}", file=sys.stderr)
        raise
    finally:
        if mosquitto is not None:
            mosquitto.stop()
    print_table(args, rows, notes, load_start)
    print(f"\n({time.monotonic() - started:.0f} s)", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
