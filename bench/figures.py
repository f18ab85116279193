"""The agent's own figures: cold start, refresh latency, fan-out, burst, get-token, idle cost.

Each function takes a running rig, measures one thing and returns table rows
`(figure, measured, target)`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time

from fanout import Fleet
from harness import CLI, TIMEOUT, Rig, Watch, cpu_seconds, percentile, rss_mib

from mqtt_tokend.dev.emulator import SpotifyEmulator

Row = tuple[str, str, str]
NO_TARGET = "—"


def cold_start(rig: Rig, watch: Watch) -> list[Row]:
    """Start the agent and time the first retained token at a subscriber."""
    seen = len(watch.arrivals)
    started = time.perf_counter()
    rig.start_agent()
    first = watch.wait_count(seen + 1)
    while not watch.payloads[seen]:  # an empty payload clears the topic; it is no token
        seen += 1
        first = watch.wait_count(seen + 1)
    return [("cold start to first retained token", f"{first - started:.3f} s", "<= 0.5 s")]


def refresh_latency(rig: Rig, watch: Watch, runs: int, *, target: str) -> list[Row]:
    """`request/refresh` to the new retained token at one subscriber, back to back."""
    latencies = []
    for _ in range(runs):
        seen = len(watch.arrivals)
        sent = time.perf_counter()
        watch.client.publish(rig.topic("request/refresh"), b"", qos=1)
        latencies.append((watch.wait_count(seen + 1) - sent) * 1000)
    return [
        (
            f"request/refresh to new retained token, p50 ({runs} runs)",
            f"{statistics.median(latencies):.2f} ms",
            target,
        ),
        (
            "request/refresh to new retained token, p99",
            f"{percentile(latencies, 99):.2f} ms",
            NO_TARGET,
        ),
    ]


def fanout(rig: Rig, watch: Watch, subscribers: int, processes: int, runs: int) -> list[Row]:
    """A forced refresh until the new token has reached every one of `subscribers` clients."""
    fleet = Fleet(rig.host, rig.port, rig.topic("token"), subscribers, processes)
    try:
        fleet.wait_all(1)  # each got the retained token as it subscribed
        first, last = [], []
        for i in range(runs):
            sent = time.perf_counter()
            watch.client.publish(rig.topic("request/refresh"), b"", qos=1)
            earliest, latest = fleet.wait_all(i + 2)
            first.append((earliest - sent) * 1000)
            last.append((latest - sent) * 1000)
    finally:
        fleet.close()
    return [
        (
            f"fan-out: forced refresh to new token at all {subscribers} subscribers "
            f"({processes} processes), p50 ({runs} runs)",
            f"{statistics.median(last):.2f} ms (first of them {statistics.median(first):.2f} ms)",
            NO_TARGET,
        ),
        (
            f"fan-out to all {subscribers} subscribers, p99",
            f"{percentile(last, 99):.2f} ms",
            NO_TARGET,
        ),
    ]


def burst(rig: Rig, watch: Watch, emulator: SpotifyEmulator, requests: int) -> list[Row]:
    """`requests` refresh requests at once, with the shipped min_refresh_interval (30 s)."""
    rig.set(min_refresh_interval=30)
    seen = len(watch.arrivals)
    rig.start_agent()  # restarted to read the new interval
    watch.wait_count(seen + 1)
    time.sleep(0.5)  # whatever the start-up does is not part of the burst
    answers = Watch(rig.host, rig.port, rig.topic("response/refresh"))
    before = emulator.calls("token")
    started = time.perf_counter()
    infos = [
        watch.client.publish(rig.topic("request/refresh"), b"", qos=1) for _ in range(requests)
    ]
    for info in infos:
        info.wait_for_publish(TIMEOUT)
    sent = time.perf_counter() - started
    answers.wait_count(requests)  # every request answered: no call can still be coming
    answers.close()
    calls = emulator.calls("token") - before
    return [
        (
            f"Spotify calls for a burst of {requests:,} refresh requests",
            f"{calls} (burst sent in {sent:.2f} s)",
            "<= 2",
        )
    ]


def get_token(rig: Rig, runs: int) -> list[Row]:
    """Wall time of `mqtt-tokend get-token`, a fresh Python each time."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [*CLI, "--config", str(rig.config), "get-token"], check=True, capture_output=True
        )
        times.append(time.perf_counter() - started)
    return [
        (
            f"get-token wall time, median of {runs}",
            f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f})",
            "<= 150 ms",
        )
    ]


def idle(rig: Rig, seconds: float) -> list[Row]:
    """What the agent costs while nothing happens: CPU over `seconds`, RSS at the end."""
    pid, tick = rig.pid, 1 / os.sysconf("SC_CLK_TCK")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the figure is the cost of this idle spell
    used, spell = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    return [
        (f"agent resident memory after {seconds:g} s idle", f"{rss_mib(pid):.1f} MiB", "<= 36 MiB"),
        (
            f"agent CPU while idle ({seconds:g} s)",
            f"{used / spell * 100:.3f} % ({round(used / tick)} ticks of {tick * 1000:g} ms)",
            "< 0.1 %",
        ),
    ]
