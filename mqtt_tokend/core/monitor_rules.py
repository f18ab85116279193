"""The redundant monitor's rules: how it judges what it saw, and when it alerts. Pure.

`assess` turns an observation (the retained health and availability, or the status file) into
a verdict; `decide` turns a verdict and what was alerted before into a plan: alert a problem
once, again after a day or when it changes, and announce its recovery. Both take `now`.

One problem, one notification: a live agent (online, checking on time) whose health carries
`instructions` has told a person itself (its alert on `<base>/alert`, its notice file), so the
monitor does not publish that again, nor the recovery the agent announces too; it only
e-mails. The monitor alerts where the agent cannot: dead, stuck, silent, or no broker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import ExitCode, State
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.contract.wording import (
    RESTART_INSTRUCTIONS,
    auth_instructions,
    broker_instructions,
    one_line,
    refresh_instructions,
    span,
)

REALERT_SECONDS = 86400.0  # the same problem is alerted again at most once a day
STALE_CHECKS = 2  # a health record older than this many check intervals means a stuck agent


def judge(
    health: dict[str, Any] | None, *, online: bool | None, now: float
) -> tuple[ExitCode, str]:
    """How a monitor rates a published health record: an exit code and one line why."""
    if health is None:
        return ExitCode.UNKNOWN, "no health record found: is the agent running?"
    state = health.get("state")
    expires_at = health.get("expires_at")
    message = str(health.get("message") or "")
    if online is False:
        return ExitCode.CRITICAL, "the agent is offline (its Last Will or a clean stop)"
    if state in (State.AUTH_REQUIRED, State.ERROR):
        return ExitCode.CRITICAL, f"{state}: {message}"
    if state == State.DEGRADED:
        # Degraded means the user token is gone by definition; consumers still get the app token.
        return ExitCode.WARNING, f"{state}: {message}"
    if not isinstance(expires_at, int | float) or expires_at <= now:
        return ExitCode.CRITICAL, f"{state}: no valid token ({message})"
    if state in (State.RETRYING, State.STARTING):
        return ExitCode.WARNING, f"{state}: {message}"
    if state == State.OK:
        return ExitCode.OK, f"ok: token valid for {int(expires_at - now)} s"
    return ExitCode.UNKNOWN, f"unknown state {state!r}"


@dataclass(frozen=True)
class Observation:
    """What the monitor could find out: the health record, availability, and where from."""

    health: dict[str, Any] | None
    online: bool | None
    broker_reachable: bool
    note: str | None = None  # why the status file was used, said on the output line
    login_refused: tuple[str, str] | None = None  # the broker refused our login: (why, the fix)
    forced_client_id: str | None = None  # the broker's warning: our connection kicked the agent


@dataclass(frozen=True)
class Verdict:
    """The monitor's judgement: an exit code, one line why, and what a person should do."""

    code: ExitCode
    reason: str
    event: str | None = None  # the alert event of a CRITICAL verdict
    instructions: str | None = None
    agent_told: bool = False  # the live agent alerted this problem itself

    def line(self) -> str:
        """The one line printed for the timer's journal or cron's mail."""
        return f"{self.code.name}: {self.reason}"


@dataclass(frozen=True)
class Memory:
    """What the monitor last alerted (health_check_state.json); no secrets in it."""

    event: str | None = None
    alerted_at: float | None = None
    notice_sha256: str | None = None  # the notice it wrote, to remove only its own
    agent_told: bool = False  # the agent alerted `event` on <base>/alert, not the monitor

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the state directory."""
        return {
            "event": self.event,
            "alerted_at": self.alerted_at,
            "notice_sha256": self.notice_sha256,
            "agent_told": self.agent_told,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Memory:
        """Rebuild from the stored object; anything malformed counts as no memory."""
        data = data or {}
        event, at, digest = data.get("event"), data.get("alerted_at"), data.get("notice_sha256")
        if not isinstance(event, str) or not isinstance(at, int | float):
            return cls()
        told = data.get("agent_told") is True
        return cls(event, float(at), digest if isinstance(digest, str) else None, told)


@dataclass(frozen=True)
class Plan:
    """What one run does besides printing: alert, write or remove the notice, remember."""

    memory: Memory
    alert: Alert | None = None  # e-mailed, and published on <base>/alert when `publish`
    publish: bool = True  # False: the agent says it on <base>/alert itself
    notice: Alert | None = None  # written to the notice file
    clear_notice: str | None = None  # remove the notice if its SHA-256 is still this


def digest(text: str) -> str:
    """SHA-256 of a notice's text, to recognize the notice the monitor wrote."""
    return hashlib.sha256(text.encode()).hexdigest()


def assess(
    observation: Observation, *, now: float, check_interval: float, config_path: str | None
) -> Verdict:
    """Judge what was observed: a dead or stuck agent first, then the health record itself."""
    verdict = _assess(observation, now=now, check_interval=check_interval, config_path=config_path)
    if observation.forced_client_id is not None:  # a broker setting to fix, whatever else
        code = max(verdict.code, ExitCode.WARNING)
        reason = f"{observation.forced_client_id} ({verdict.reason})"
        verdict = Verdict(code, reason, verdict.event, verdict.instructions)
    if observation.note:
        return replace(verdict, reason=f"{verdict.reason} ({observation.note})")
    return verdict


def _assess(
    observation: Observation, *, now: float, check_interval: float, config_path: str | None
) -> Verdict:
    health, online = observation.health, observation.online
    if observation.login_refused is not None:  # up, but it will not let us see anything
        why, fix = observation.login_refused
        return Verdict(ExitCode.CRITICAL, why, notices.BROKER_REFUSED, fix)
    if observation.forced_client_id is not None:
        online = None  # our own connection took the agent's session: its `offline` is ours
    if not observation.broker_reachable:
        # Consumers get their token from the broker: unreachable, nobody gets one, whatever
        # the agent's status file says (it may be the agent that cannot reach it either).
        return Verdict(
            ExitCode.CRITICAL,
            "cannot reach the MQTT broker, so no consumer can get a token",
            notices.BROKER_UNREACHABLE,
            broker_instructions(config_path),
        )
    if online is False:
        return Verdict(
            ExitCode.CRITICAL,
            "the agent is offline: it died (its Last Will) or was stopped",
            notices.AGENT_DEAD,
            RESTART_INSTRUCTIONS,
        )
    checked_at = health.get("checked_at") if health else None
    if isinstance(checked_at, int | float) and _stale(health, now, check_interval):
        who = "the agent is online but stuck" if online else "the agent is dead or stuck"
        return Verdict(
            ExitCode.CRITICAL,
            f"{who}: its last health check was {span(now - checked_at)} ago "
            f"(it checks every {span(check_interval)})",
            notices.AGENT_DEAD,
            RESTART_INSTRUCTIONS,
        )
    code, why = judge(health, online=online, now=now)
    if code != ExitCode.CRITICAL or health is None:
        return Verdict(code, one_line(why))
    state = health.get("state")
    given = health.get("instructions")
    instructions = given if isinstance(given, str) and given else None
    expires_at = health.get("expires_at")
    expired = not isinstance(expires_at, int | float) or expires_at <= now
    if state == State.AUTH_REQUIRED:
        event = notices.AUTH_REQUIRED
        instructions = instructions or auth_instructions(config_path)
    elif state == State.ERROR and not expired:
        event = notices.ERROR
    else:
        event = notices.TOKEN_EXPIRED
    if instructions is None:
        instructions = refresh_instructions(config_path)
    # Instructions in a fresh record of a live agent mean it raised the problem (its alert,
    # its notice) itself: the agent publishes them only while it tells a person to act.
    live = online is True and observation.note is None and isinstance(checked_at, int | float)
    told = live and isinstance(given, str) and bool(given)
    return Verdict(code, one_line(why), event, instructions, agent_told=told)


def _stale(health: dict[str, Any] | None, now: float, check_interval: float) -> bool:
    checked_at = health.get("checked_at") if health else None
    return isinstance(checked_at, int | float) and now - checked_at > STALE_CHECKS * check_interval


def stuck_but_online(observation: Observation, *, now: float, check_interval: float) -> bool:
    """Connected (no Last Will) but no longer checking: Home Assistant's Agent sensor must
    go off, so the monitor says `offline`; the agent's next health record says `online`."""
    seen = observation.broker_reachable and observation.online is True
    return seen and _stale(observation.health, now, check_interval)


def decide(verdict: Verdict, memory: Memory, *, now: float, notice_present: bool) -> Plan:
    """Alert a problem once, again after a day or when it changes; announce its recovery."""
    if verdict.code == ExitCode.CRITICAL and verdict.event is not None:
        alert = Alert(verdict.event, verdict.reason, now, verdict.instructions)
        text_sha = digest(notices.notice_text(alert))
        elapsed = None if memory.alerted_at is None else now - memory.alerted_at
        # A negative elapsed time is a clock that jumped back (no RTC): alert rather than wait.
        fresh = elapsed is not None and 0 <= elapsed < REALERT_SECONDS
        if verdict.agent_told:  # only the e-mail is the monitor's to send
            if memory.event != verdict.event or not fresh or not memory.agent_told:
                told = Memory(verdict.event, now, None, agent_told=True)
                return Plan(told, alert=alert, publish=False, clear_notice=memory.notice_sha256)
            return Plan(memory)
        if memory.event != verdict.event or not fresh:
            return Plan(Memory(verdict.event, now, text_sha), alert=alert, notice=alert)
        if not notice_present:  # someone removed it while the problem lasts
            return Plan(Memory(memory.event, memory.alerted_at, text_sha), notice=alert)
        return Plan(memory)
    if verdict.code == ExitCode.OK and memory.event is not None:
        alert = Alert(notices.RECOVERED, f"recovered from {memory.event}: {verdict.reason}", now)
        return Plan(
            Memory(),
            alert=alert,
            clear_notice=memory.notice_sha256,
            publish=not memory.agent_told,  # the agent announces its own recovery
        )
    return Plan(memory)  # WARNING and UNKNOWN: nothing new to say yet
