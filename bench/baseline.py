"""The baseline users have today beside ours: N processes each keeping a Spotify token.

Baseline: N processes, each with spotipy's `SpotifyPKCE` and its `CacheFileHandler`: all on
one cache file (one login; many Pi setups share `.cache`), each on its own file with its own
login, or each on its own copy of one login's file. Ours: the agent and N processes with a
`TokenConsumer`. Every process asks for its token about every `poll` seconds for `hours`
simulated hours of `sim_hour` real seconds each (the token lifetime is one simulated hour).
Counted: calls to Spotify's token endpoint per simulated hour, cache-file races (a torn or
empty cache file, or a refresh token another process had already used: `invalid_grant`),
and re-logins (spotipy asking a person to log in, or a session left dead at the end).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import BENCH_DIR, Rig, Watch

from mqtt_tokend.dev.emulator import SpotifyEmulator

Row = tuple[str, str, str]
TARGET = "1 per token lifetime"
HOUR = 3600.0


def _run_workers(
    commands: list[list[str]], seconds: float, token_calls: Callable[[], int]
) -> tuple[list[dict[str, Any]], int]:
    """Run the workers `seconds` together: what each printed, and Spotify's token calls."""
    workers = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    try:
        for worker in workers:
            if worker.stdout is None or worker.stdout.readline().strip() != "ready":
                raise SystemExit(f"a worker did not start: {' '.join(commands[0][:2])}")
        before = token_calls()
        end = time.time() + seconds
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.write(f"{end!r}\n")
                worker.stdin.flush()
        results = []
        for worker in workers:
            out, _ = worker.communicate(timeout=seconds + 60)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results, token_calls() - before
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _total(results: list[dict[str, Any]]) -> Counter[str]:
    return Counter({k: sum(r.get(k, 0) for r in results) for r in results for k in r})


MODES = {
    "shared": "one shared cache file",
    "own": "a cache file and a login each",
    "copied": "a copy of one cache file each",
}


def spotipy_baseline(
    work: Path,
    *,
    processes: int,
    mode: str,
    hours: float,
    sim_hour: float,
    poll: float,
    rotate: bool,
) -> tuple[Row, list[float]]:
    """spotipy in `processes` processes (see MODES); the row, and its refresh round trips."""
    from spotipy_side import ScaledClock, log_in, use_clock  # only the baseline needs spotipy

    work.mkdir(parents=True, exist_ok=True)
    clock = ScaledClock(time.time(), HOUR / sim_hour)
    use_clock(clock)
    with SpotifyEmulator(token_lifetime=HOUR, clock=clock.time) as emulator:
        emulator.rotate_refresh_tokens = rotate
        if mode == "shared":
            caches = [work / ".cache"] * processes
        else:
            caches = [work / f".cache-{i}" for i in range(processes)]
        for cache in caches if mode == "own" else caches[:1]:
            log_in(emulator, cache)
        for cache in caches[1:] if mode == "copied" else []:
            shutil.copyfile(caches[0], cache)
        commands = [
            [
                sys.executable,
                str(BENCH_DIR / "spotipy_worker.py"),
                *("--emulator", emulator.url, "--cache", str(cache)),
                *("--origin", repr(clock.origin), "--scale", repr(clock.scale)),
                *("--poll", repr(poll)),
            ]
            for cache in caches
        ]
        results, calls = _run_workers(commands, hours * sim_hour, lambda: emulator.calls("token"))
        live = emulator.live_refresh_tokens()
        lost = sum(
            json.loads(cache.read_text()).get("refresh_token") not in live for cache in set(caches)
        )
    count = _total([{k: v for k, v in r.items() if k != "round_trips"} for r in results])
    failed = count["invalid_grant"] + count["oauth_errors"]
    other = count["oauth_errors"] + count["other_errors"]
    measured = (
        f"{calls / hours:.2f} calls/h ({(calls - failed) / hours:.2f} ok); "
        f"races {count['json_errors'] + count['invalid_grant']} ({count['json_errors']} torn "
        f"reads, {count['invalid_grant']} invalid_grant); "
        f"re-logins {count['login_prompts'] + lost} ({count['login_prompts']} login prompts, "
        f"{lost} sessions lost)"
    )
    if other:
        measured += f"; other errors {other}"
    row = (f"spotipy, {processes} processes, {MODES[mode]}", measured, TARGET)
    return row, [t for r in results for t in r["round_trips"]]


def ours(
    work: Path,
    *,
    host: str,
    port: int,
    processes: int,
    hours: float,
    sim_hour: float,
    poll: float,
    rotate: bool,
) -> Row:
    """The agent (tokens living `sim_hour` seconds) and `processes` TokenConsumer processes."""
    with SpotifyEmulator(token_lifetime=sim_hour) as emulator:
        emulator.rotate_refresh_tokens = rotate
        rig = Rig(
            work,
            host=host,
            port=port,
            emulator_url=emulator.url,
            token_lifetime=sim_hour,
            # 40 % early: TokenConsumer stops handing out a token in the last quarter of a
            # short lifetime (in the last 5 s of an hour), so refresh before that.
            agent={"refresh_early_seconds": 0.4 * sim_hour, "check_interval": HOUR},
        )
        health = Watch(host, port, rig.topic("health"))
        tokens = Watch(host, port, rig.topic("token"))
        rig.start_agent()
        try:
            tokens.wait_count(1)
            commands = [
                [
                    sys.executable,
                    str(BENCH_DIR / "consumer_worker.py"),
                    *("--host", host, "--port", str(port), "--base-topic", rig.base),
                    *("--key-file", str(rig.key_file), "--poll", repr(poll)),
                ]
                for _ in range(processes)
            ]
            results, calls = _run_workers(
                commands, hours * sim_hour, lambda: emulator.calls("token")
            )
            states = [json.loads(p).get("state") for p in health.payloads if p]
        finally:
            rig.stop_agent()
            health.close()
            tokens.close()
            rig.clear_retained()
    expired = sum(r.get("expired", 0) for r in results)
    failures = sum(r.get("failures", 0) for r in results)
    relogins = int("auth_required" in states or states[-1:] != ["ok"])
    longest_wait = max(r["longest_wait"] for r in results)
    slow = sorted(tuple(entry) for r in results for entry in r["slow"])
    for when, waited, issued_at in slow:  # to tell a late agent from a starved consumer
        print(
            f"slow token(): {waited * 1000:.0f} ms at {when:.3f}, token issued at {issued_at:.3f}",
            file=sys.stderr,
        )
    seen = min(r["distinct"] for r in results)  # the token at the start, then one per call
    unusual = sorted(set(states) - {"starting", "ok"})
    refreshes = f"health also {', '.join(unusual)}" if unusual else "all ok"
    return (
        f"mqtt-tokend, the agent + {processes} TokenConsumer processes",
        f"{calls / hours:.2f} calls/h ({refreshes}; {calls} calls, {seen} tokens at every "
        f"consumer); races {expired + failures} "
        f"({expired} expired tokens handed out, {failures} failures); "
        f"re-logins {relogins}; longest wait in token() {longest_wait * 1000:.1f} ms "
        f"({len(slow)} waits over 100 ms)",
        TARGET,
    )
