"""Strangers flood Home Assistant's login webhook while the owner taps: the scenario, shared.

`flood_then_tap` starts a real Home Assistant with a webhook automation (the shipped one, or
any other file), logs the real agent in against the Spotify emulator, has Spotify end that
login, and once the agent offers a new one sends the stranger GETs over loopback keep-alive
connections, the owner's tap (the redirect Spotify's approval sends the phone to) and more
strangers racing it. It returns what happened; tests/homeassistant/test_webhook_flood.py
asserts on it and `python -m tests.homeassistant.flood` prints it
(docs/measurements.md has the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, approve, login
from tests.integration.watch import Watcher

HOST = "127.0.0.1"
CONCURRENCY = 64  # keep-alive connections the strangers share
FLOOD_TIMEOUT = 300.0  # the whole flood must be answered within this
DEFAULT_AUTOMATION = Path(__file__).resolve().parents[2] / "deploy" / "homeassistant"
DEFAULT_AUTOMATION /= "automation-login-webhook.yaml"


def stranger_token(size: int) -> str:
    """Random URL-safe text that never spells one of our names: Home Assistant logs a stranger's
    query (its security filter), and the log check counts a line naming us as a problem."""
    from tests.homeassistant.real_ha import OURS

    while True:
        token = secrets.token_urlsafe(size)[:size]
        if not any(word in token.lower() for word in OURS):
            return token


# What strangers send: every shape a redirect can have, well-formed ones included (a stranger
# who knows the webhook id knows what Spotify's redirect looks like, not the login's state).
STRANGERS: dict[str, object] = {
    "bare": lambda: "",
    "code_only": lambda: f"code={stranger_token(150)}",
    "state_only": lambda: f"state={stranger_token(22)}",
    "code_and_state": lambda: f"code={stranger_token(150)}&state={stranger_token(22)}",
    "error_and_state": lambda: f"error=access_denied&state={stranger_token(22)}",
    "stranger_text": lambda: f"error=Call-555-0100-or-visit-example&state={stranger_token(22)}",
    "long": lambda: f"code={stranger_token(1024)}&state={stranger_token(1024)}",
    "bad_characters": lambda: f"code=a%20b%0Ac&state=%3Cscript%3E{stranger_token(22)}",
    "twice": lambda: (
        f"code={stranger_token(150)}&state={stranger_token(22)}&state={stranger_token(22)}"
    ),
    "empty_values": lambda: "code=&state=",
    "state_prefix_guess": lambda: f"code={stranger_token(150)}&state={stranger_token(1)}",
}


def stranger_paths(path: str, count: int) -> list[tuple[str, str]]:
    """`count` (kind, path?query) pairs, cycling through every kind of STRANGERS."""
    kinds = itertools.islice(itertools.cycle(STRANGERS), count)
    out = []
    for kind in kinds:
        query = STRANGERS[kind]()  # type: ignore[operator]
        out.append((kind, f"{path}?{query}" if query else path))
    return out


async def _client(port: int, todo: deque[str], statuses: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while todo:
            target = todo.popleft()
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            status = int(head.split(" ", 2)[1])
            length = 0
            for line in head.split("\r\n"):
                name, _, value = line.partition(":")
                if name == "content-length":
                    length = int(value)
                assert not (name == "transfer-encoding" and "chunked" in value), head
            await reader.readexactly(length)
            statuses[status] += 1
            if "connection: close" in head:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


async def get_all(
    port: int,
    targets: Iterable[str],
    *,
    concurrency: int = CONCURRENCY,
    statuses: Counter[int] | None = None,
) -> Counter[int]:
    """GET every target over `concurrency` keep-alive connections; the status codes seen
    (counted into `statuses` as they come, when given)."""
    todo, seen = deque(targets), Counter[int]() if statuses is None else statuses
    clients = [_client(port, todo, seen) for _ in range(min(concurrency, len(todo)) or 1)]
    await asyncio.wait_for(asyncio.gather(*clients), FLOOD_TIMEOUT)
    return seen


async def tap_amid(port: int, tap: str, strangers: list[str]) -> tuple[float, Counter[int]]:
    """The owner's tap once half of `strangers` are answered, the other half still coming:
    when it was sent (monotonic) and the strangers' status codes. The tap must get a 200."""
    statuses = Counter[int]()
    theirs = asyncio.create_task(get_all(port, strangers, statuses=statuses))
    while sum(statuses.values()) < len(strangers) // 2 and not theirs.done():
        await asyncio.sleep(0.001)
    tapped = time.monotonic()
    mine = await get_all(port, [tap], concurrency=1)
    assert mine == Counter({200: 1}), mine
    await theirs
    return tapped, statuses


@dataclass(frozen=True)
class Outcome:
    """What one flood did, and whether (and how fast) the owner's tap logged the agent in."""

    strangers: Counter[str]  # kind -> GETs sent before the tap and racing it
    statuses: Counter[int]  # Home Assistant's answers to the strangers
    flood_seconds: float  # the strangers before the tap, first GET to last answer
    passed_on: int  # messages Home Assistant published on request/auth (the owner's included)
    tap_to_ok: float | None  # None: the agent was not `ok` within the deadline
    runs_exceeded: int  # "Maximum number of runs exceeded" in Home Assistant's log
    log_problems: list[str]  # errors and warnings about our automations or MQTT

    def lines(self) -> list[str]:
        """The figures, one per line."""
        tap = "never (the tap was lost)" if self.tap_to_ok is None else f"{self.tap_to_ok:.2f} s"
        return [
            f"stranger GETs: {sum(self.strangers.values())} "
            f"({len(self.strangers)} kinds), answered {dict(self.statuses)}",
            f"flood before the tap answered in {self.flood_seconds:.1f} s",
            f"passed on to the agent on request/auth: {self.passed_on}",
            f"Home Assistant 'Maximum number of runs exceeded': {self.runs_exceeded}",
            f"owner's tap to health ok: {tap}",
        ]


def flood_then_tap(
    work: Path,
    *,
    hass: Path,
    automation: Path = DEFAULT_AUTOMATION,
    strangers: int = 5000,
    racing: int = 1000,
    ok_timeout: float = 60.0,
) -> Outcome:
    """The scenario: `strangers` GETs, then `racing` more with the owner's tap amid them."""
    from tests.homeassistant import real_ha as real
    from tests.homeassistant import test_one_tap as one_tap

    http_port, webhook_id = free_port(), stranger_token(43)
    path = f"/api/webhook/{webhook_id}"
    config_dir = work / "ha"
    before = stranger_paths(path, strangers)
    during = stranger_paths(path, racing)
    with (
        PrivateMosquitto(work / "broker") as broker,
        SpotifyEmulator() as emulator,
        Watcher(broker.host, broker.port, "#") as seen,
    ):
        real.write_config(
            config_dir,
            broker_port=broker.port,
            http_port=http_port,
            webhook_id=webhook_id,
            webhook_automation=automation,
        )
        with real.HomeAssistant(hass, config_dir) as home:
            config = one_tap.agent_config(
                work / "agent",
                broker=broker,
                emulator=emulator,
                redirect_uri=f"http://{HOST}:{http_port}{path}",
            )
            first = login(config)
            assert first.returncode == 0, first.stderr
            home.wait_started(seen)
            agent = AgentProcess(config).start()
            try:
                seen.wait_for(real.TOPICS.health, one_tap.state_is("ok"), timeout=real.STEP_TIMEOUT)
                url = one_tap.ends_login(broker, emulator, seen)
                # The owner taps the link Home Assistant shows: it has it by then.
                real.States(seen).wait_attribute(real.IDS["login"], "auth_url", url)
                tap = approve(url)  # where Spotify sends the phone after approval
                assert tap.startswith(f"http://{HOST}:{http_port}{path}?"), tap
                started = time.monotonic()
                statuses = asyncio.run(get_all(http_port, [target for _, target in before]))
                flooded = time.monotonic() - started
                tap_target = tap.split(f"{HOST}:{http_port}", 1)[1]
                racing_targets = [target for _, target in during]
                tapped, raced = asyncio.run(tap_amid(http_port, tap_target, racing_targets))
                try:
                    ok = seen.wait_for(
                        real.TOPICS.health, one_tap.state_is("ok"), after=tapped, timeout=ok_timeout
                    )
                    tap_to_ok: float | None = ok.at - tapped
                except AssertionError:
                    tap_to_ok = None
            finally:
                agent.stop()
        passed_on = [m for m in seen.on(real.TOPICS.request("auth")) if m.at >= started]
    log = home.log()
    return Outcome(
        strangers=Counter(kind for kind, _ in before + during),
        statuses=statuses + raced,
        flood_seconds=flooded,
        passed_on=len(passed_on),
        tap_to_ok=tap_to_ok,
        runs_exceeded=log.count("Maximum number of runs exceeded"),
        log_problems=real.log_problems(log, version=real.version(config_dir)),
    )


def main() -> None:
    """Print the figures of `--runs` floods (see the module docstring)."""
    import os
    import statistics
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--automation", type=Path, default=DEFAULT_AUTOMATION)
    parser.add_argument("--strangers", type=int, default=5000)
    parser.add_argument("--racing", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--hass", type=Path, help="default: $MQTT_TOKEND_HA_VENV/bin/hass")
    args = parser.parse_args()
    hass = args.hass or Path(os.environ.get("MQTT_TOKEND_HA_VENV", "")) / "bin" / "hass"
    text = Path(args.automation).read_text()  # a file, or a pipe from `git show` read once
    print(f"automation: {args.automation}")
    times = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as work:
            copy = Path(work) / "automation-login-webhook.yaml"
            copy.write_text(text)
            outcome = flood_then_tap(
                Path(work), hass=hass, automation=copy, strangers=args.strangers, racing=args.racing
            )
        print(f"run {run}:", "\n  ".join(["", *outcome.lines()]))
        if outcome.tap_to_ok is not None:
            times.append(outcome.tap_to_ok)
    summary = f"taps that logged in: {len(times)} of {args.runs}"
    if times:
        summary += f"; tap to ok median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    print(summary)


if __name__ == "__main__":
    main()
