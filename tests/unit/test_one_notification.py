"""One problem, one notification: the monitor leaves to the live agent what the agent said, and
alerts where the agent cannot (dead, stuck, silent, no broker). Pure: a given `now`."""

from __future__ import annotations

from typing import Any

import pytest

from mqtt_tokend.cli.commands import format_status
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.wording import auth_instructions
from mqtt_tokend.core.monitor_rules import (
    REALERT_SECONDS,
    Memory,
    Observation,
    Plan,
    assess,
    decide,
)

NOW = 1_800_000_000.0
INTERVAL = 300.0
CONFIG = "/etc/mqtt-tokend/config.toml"
TOLD = auth_instructions(CONFIG)  # what the agent's health carries while it tells a person


def record(state: str, *, age: float = 10.0, expired: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "state": state,
        "message": f"{state} message",
        "expires_at": NOW - 1 if expired else NOW + 1800,
        "checked_at": NOW - age,
        "instructions": None,
    } | extra


def plan_for(observation: Observation, memory: Memory | None = None, at: float = NOW) -> Plan:
    """The plan at `at`, for a record as old then as it is at NOW."""
    health = observation.health
    if at != NOW and health is not None and isinstance(health.get("checked_at"), float):
        health = health | {"checked_at": health["checked_at"] + at - NOW}
        health["expires_at"] += at - NOW
        observation = Observation(health, observation.online, True, observation.note)
    verdict = assess(observation, now=at, check_interval=INTERVAL, config_path=CONFIG)
    return decide(verdict, memory or Memory(), now=at, notice_present=True)


STALE = 3 * INTERVAL


def told(
    state: str, online: bool | None = True, note: str | None = None, **extra: Any
) -> Observation:
    """A record in which the agent tells a person to act (it carries the instructions)."""
    return Observation(record(state, instructions=TOLD, **extra), online, True, note)


# (observation, the event alerted, published on <base>/alert by the monitor)
CASES = {
    # The agent is alive and said it itself (its health carries the instructions).
    "live agent, auth_required": (told("auth_required"), notices.AUTH_REQUIRED, False),
    "live, token expired": (told("auth_required", expired=True), notices.AUTH_REQUIRED, False),
    "live agent, client rejected": (told("error"), notices.ERROR, False),
    # The agent cannot say it: the monitor does.
    "live, silent error": (Observation(record("error"), True, True), notices.ERROR, True),
    "live, silent expiry": (
        Observation(record("retrying", expired=True), True, True),
        notices.TOKEN_EXPIRED,
        True,
    ),
    "dead agent (Last Will)": (told("auth_required", False), notices.AGENT_DEAD, True),
    "stuck agent": (told("auth_required", age=STALE), notices.AGENT_DEAD, True),
    "availability unknown": (told("auth_required", None), notices.AUTH_REQUIRED, True),
    "from the status file": (told("auth_required", note="none"), notices.AUTH_REQUIRED, True),
    "no checked_at": (told("auth_required", checked_at=None), notices.AUTH_REQUIRED, True),
}


@pytest.mark.parametrize(("observation", "event", "published"), CASES.values(), ids=CASES)
def test_the_monitor_publishes_only_what_the_agent_cannot(
    observation: Observation, event: str, published: bool
) -> None:
    plan = plan_for(observation)
    assert plan.alert is not None and plan.alert.event == event
    assert plan.publish is published
    # Its notice file too is the agent's while the agent speaks.
    assert (plan.notice is not None) is published
    assert plan.memory.agent_told is not published


def test_the_agents_problem_is_e_mailed_once_a_day_and_its_recovery_not_published() -> None:
    said = told("auth_required")
    first = plan_for(said)
    assert first.alert is not None and not first.publish
    assert plan_for(said, first.memory, NOW + 1800).alert is None
    later = plan_for(said, first.memory, NOW + REALERT_SECONDS + 1)
    assert later.alert is not None and not later.publish
    fixed = plan_for(Observation(record("ok"), True, True), first.memory, NOW + 3600)
    assert fixed.alert is not None and fixed.alert.event == notices.RECOVERED
    assert not fixed.publish  # the agent announces its own recovery
    assert fixed.memory == Memory()


def test_the_monitors_own_problem_is_published_and_so_is_its_recovery() -> None:
    dead = plan_for(Observation(record("ok"), False, True))
    assert dead.publish and dead.memory.event == notices.AGENT_DEAD
    fixed = plan_for(Observation(record("ok"), True, True), dead.memory, NOW + 3600)
    assert fixed.alert is not None and fixed.alert.event == notices.RECOVERED and fixed.publish


def test_a_dead_agent_back_with_a_problem_of_its_own_takes_the_word_over() -> None:
    dead = plan_for(Observation(record("ok"), False, True))
    back = plan_for(told("auth_required"), dead.memory, NOW + 60)
    assert back.alert is not None and back.alert.event == notices.AUTH_REQUIRED
    assert not back.publish
    assert back.clear_notice == dead.memory.notice_sha256  # the monitor's notice, if unchanged


def test_memory_keeps_who_told() -> None:
    memory = Memory(notices.AUTH_REQUIRED, NOW, None, agent_told=True)
    assert Memory.from_dict(memory.to_dict()) == memory
    assert Memory.from_dict({"event": "x", "alerted_at": NOW}).agent_told is False


# ---- `status`: no deadline beside a TO DO that contradicts it -------------------------------


@pytest.mark.parametrize(
    ("state", "pending", "shows_date"),
    [
        ("ok", False, True),
        ("retrying", False, True),
        ("auth_required", True, False),
        ("auth_required", False, False),
        ("degraded", True, False),
    ],
)
def test_status_shows_the_deadline_only_while_the_login_works(
    state: str, pending: bool, shows_date: bool
) -> None:
    health = record(state, reauth_by=NOW + 179 * 86400, login_pending=pending)
    if state != "ok":
        health["instructions"] = TOLD
    text = format_status(health, online=True, now=NOW)
    (row,) = [line for line in text.splitlines() if line.startswith("log in again by")]
    assert ("(in 179 days)" in row) is shows_date
    assert ("now" in row) is not shows_date
    assert (f"TO DO: {TOLD}" in text) is (state != "ok")


def test_the_verdict_of_a_told_problem_is_still_critical() -> None:
    """Leaving the alert to the agent changes nothing of what `health-check` prints or exits."""
    verdict = assess(told("auth_required"), now=NOW, check_interval=INTERVAL, config_path=CONFIG)
    assert verdict.code is ExitCode.CRITICAL and verdict.instructions == TOLD
