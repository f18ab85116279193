"""The redundant monitor's core: judging, staleness and alert deduplication, with a given `now`."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.adapters import notice_file
from mqtt_tokend.adapters.store import HEALTH_LOG_FILE
from mqtt_tokend.cli.monitor import MEMORY_FILE, health_check
from mqtt_tokend.config import AgentConfig, AlertsConfig, Config, parse_config
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.notices import NOTICE_FILE, Alert
from mqtt_tokend.core.monitor_rules import (
    REALERT_SECONDS,
    Memory,
    Observation,
    Plan,
    Verdict,
    assess,
    decide,
    digest,
)

NOW = 1_800_000_000.0
INTERVAL = 300.0
CONFIG = "/etc/mqtt-tokend/config.toml"


def record(
    state: str = "ok",
    *,
    age: float = 10.0,
    expires_in: float = 1800.0,
    now: float = NOW,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "state": state,
        "message": f"{state} message",
        "expires_at": now + expires_in,
        "checked_at": now - age,
        "instructions": None,
        **extra,
    }


def seen(
    health: dict[str, Any] | None, online: bool | None = True, *, reachable: bool = True
) -> Observation:
    return Observation(health, online, broker_reachable=reachable)


def verdict_of(observation: Observation) -> Verdict:
    return assess(observation, now=NOW, check_interval=INTERVAL, config_path=CONFIG)


# ---- judging ------------------------------------------------------------------------------

CASES = [
    (seen(record()), ExitCode.OK, None),
    (seen(record(), online=None), ExitCode.OK, None),
    (seen(record(), online=False), ExitCode.CRITICAL, notices.AGENT_DEAD),
    (seen(None, online=False), ExitCode.CRITICAL, notices.AGENT_DEAD),
    (seen(record(age=2 * INTERVAL + 1)), ExitCode.CRITICAL, notices.AGENT_DEAD),
    (seen(record(age=2 * INTERVAL)), ExitCode.OK, None),
    (seen(record(age=-3600)), ExitCode.OK, None),  # the wall clock jumped back
    (seen(record(expires_in=-1)), ExitCode.CRITICAL, notices.TOKEN_EXPIRED),
    (seen(record("retrying", expires_in=-1)), ExitCode.CRITICAL, notices.TOKEN_EXPIRED),
    (seen(record("auth_required", expires_in=-1)), ExitCode.CRITICAL, notices.AUTH_REQUIRED),
    (seen(record("error")), ExitCode.CRITICAL, notices.ERROR),
    (seen(record("error", expires_in=-1)), ExitCode.CRITICAL, notices.TOKEN_EXPIRED),
    (seen(record("degraded", expires_in=-1)), ExitCode.WARNING, None),
    (seen(record("retrying")), ExitCode.WARNING, None),
    (seen(record("starting")), ExitCode.WARNING, None),
    (seen(record("bogus")), ExitCode.UNKNOWN, None),
    (seen(None, online=None, reachable=False), ExitCode.CRITICAL, notices.BROKER_UNREACHABLE),
    (seen(None, online=True), ExitCode.UNKNOWN, None),
]
IDS = [
    "ok",
    "ok-no-availability",
    "offline",
    "offline-no-health",
    "stale-stuck",
    "exactly-two-intervals",
    "checked-in-the-future",
    "expired",
    "retrying-expired",
    "auth-required",
    "error-valid-token",
    "error-expired",
    "degraded",
    "retrying",
    "starting",
    "unknown-state",
    "broker-unreachable-no-status-file",
    "online-without-health",
]


@pytest.mark.parametrize(("observation", "code", "event"), CASES, ids=IDS)
def test_assess(observation: Observation, code: ExitCode, event: str | None) -> None:
    verdict = verdict_of(observation)
    assert (verdict.code, verdict.event) == (code, event)
    assert verdict.line().startswith(f"{code.name}: ")
    assert "\n" not in verdict.line()
    if code == ExitCode.CRITICAL:
        assert verdict.instructions


def test_a_dead_agent_is_told_to_be_restarted() -> None:
    verdict = verdict_of(seen(record(), online=False))
    assert verdict.instructions is not None
    assert "sudo systemctl restart lofi-pi-token-manager" in verdict.instructions
    assert "journalctl -u lofi-pi-token-manager -n 50" in verdict.instructions


def test_a_stuck_agent_says_how_long_it_has_been_silent() -> None:
    verdict = verdict_of(seen(record(age=900)))
    assert "stuck" in verdict.reason and "15 min ago" in verdict.reason
    assert "every 5 min" in verdict.reason


@pytest.mark.parametrize("age", [0, 3600], ids=["fresh-ok", "stale"])
def test_an_unreachable_broker_is_critical_whatever_the_status_file_says(age: float) -> None:
    """Issue 12, item 1: the status file said ok, health-check said OK, no consumer got a token."""
    note = "cannot reach the MQTT broker at 127.0.0.1:1883 (Connection refused)"
    verdict = verdict_of(Observation(record(age=age), None, broker_reachable=False, note=note))
    assert verdict.code == ExitCode.CRITICAL
    assert verdict.event == notices.BROKER_UNREACHABLE
    assert verdict.reason.startswith("cannot reach the MQTT broker, so no consumer can get")
    assert verdict.reason.endswith(f"({note})")
    assert verdict.instructions is not None
    assert "sudo systemctl status mosquitto" in verdict.instructions
    assert f"credentials in {CONFIG}" in verdict.instructions


def test_auth_uses_the_agents_instructions_else_the_auth_command() -> None:
    own = verdict_of(seen(record("auth_required", instructions="run mqtt-tokend auth now")))
    assert own.instructions == "run mqtt-tokend auth now"
    default = verdict_of(seen(record("auth_required")))
    assert default.instructions is not None
    assert "On the Pi run: sudo mqtt-tokend auth " in default.instructions  # CONFIG is installed


# ---- deduplication ----------------------------------------------------------------------------

DEAD = Verdict(ExitCode.CRITICAL, "offline", notices.AGENT_DEAD, "restart it")
EXPIRED = Verdict(ExitCode.CRITICAL, "expired", notices.TOKEN_EXPIRED, "refresh it")
OK = Verdict(ExitCode.OK, "ok: token valid for 1800 s")
WARNING = Verdict(ExitCode.WARNING, "retrying: Spotify is down")
UNKNOWN = Verdict(ExitCode.UNKNOWN, "no health record")


def after(plan: Plan, verdict: Verdict, seconds: float, *, notice_present: bool = True) -> Plan:
    return decide(verdict, plan.memory, now=NOW + seconds, notice_present=notice_present)


def test_a_new_problem_is_alerted_once_with_a_notice() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    assert first.alert == Alert(notices.AGENT_DEAD, "offline", NOW, "restart it")
    assert first.notice == first.alert
    assert first.memory.event == notices.AGENT_DEAD and first.memory.alerted_at == NOW
    assert first.memory.notice_sha256 == digest(notices.notice_text(first.alert))
    again = after(first, DEAD, 1800)
    assert again.alert is None and again.notice is None
    assert again.memory == first.memory


def test_the_same_problem_is_alerted_again_after_a_day() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    assert after(first, DEAD, REALERT_SECONDS - 1).alert is None
    later = after(first, DEAD, REALERT_SECONDS)
    assert later.alert is not None and later.memory.alerted_at == NOW + REALERT_SECONDS


def test_a_clock_that_jumped_back_does_not_silence_alerts_for_ever() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    assert after(first, DEAD, -7200).alert is not None


def test_a_different_problem_is_alerted_at_once() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    changed = after(first, EXPIRED, 60)
    assert changed.alert is not None and changed.alert.event == notices.TOKEN_EXPIRED
    assert changed.notice == changed.alert


def test_a_removed_notice_is_written_again_without_a_new_alert() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    again = after(first, DEAD, 1800, notice_present=False)
    assert again.alert is None and again.notice is not None
    assert again.memory.alerted_at == NOW
    assert again.memory.notice_sha256 == digest(notices.notice_text(again.notice))


def test_recovery_is_announced_once_and_removes_the_monitors_notice() -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    recovered = after(first, OK, 1800)
    assert recovered.alert is not None and recovered.alert.event == notices.RECOVERED
    assert notices.AGENT_DEAD in recovered.alert.message
    assert recovered.clear_notice == first.memory.notice_sha256
    assert recovered.memory == Memory()
    quiet = after(recovered, OK, 3600)
    assert quiet == Plan(Memory())


@pytest.mark.parametrize("verdict", [WARNING, UNKNOWN], ids=["warning", "unknown"])
def test_warning_and_unknown_neither_alert_nor_forget(verdict: Verdict) -> None:
    first = decide(DEAD, Memory(), now=NOW, notice_present=False)
    plan = after(first, verdict, 1800)
    assert plan == Plan(first.memory)
    assert decide(verdict, Memory(), now=NOW, notice_present=False) == Plan(Memory())


@pytest.mark.parametrize(
    "stored",
    [None, {}, {"event": 3, "alerted_at": NOW}, {"event": "agent_dead", "alerted_at": "x"}],
    ids=["absent", "empty", "bad-event", "bad-time"],
)
def test_a_missing_or_malformed_memory_is_no_memory(stored: dict[str, Any] | None) -> None:
    assert Memory.from_dict(stored) == Memory()


def test_memory_round_trips() -> None:
    memory = Memory(notices.AGENT_DEAD, NOW, "ab" * 32)
    assert Memory.from_dict(json.loads(json.dumps(memory.to_dict()))) == memory


# ---- one run, with the broker, the mail and the clock faked -------------------------------


class Outbox:
    def __init__(self) -> None:
        self.published: list[Alert] = []
        self.mailed: list[tuple[Alert, ExitCode]] = []

    def publish(self, _config: Config, alert: Alert, *, timeout: float) -> None:
        self.published.append(alert)

    def mail(self, _alerts: AlertsConfig, alert: Alert, *, code: ExitCode) -> bool:
        self.mailed.append((alert, code))
        return True


def make_config(state_dir: Path) -> Config:
    config = parse_config({"spotify": {"client_id": "abc"}}, base_dir=state_dir.parent, environ={})
    return replace(config, agent=AgentConfig(state_dir=state_dir, check_interval=INTERVAL))


def run(config: Config, observation: Observation, outbox: Outbox, at: float) -> tuple[int, str]:
    out = io.StringIO()
    code = health_check(
        config,
        timeout=1,
        out=out,
        clock=lambda: at,
        look=lambda _c, *, timeout: observation,
        publish=outbox.publish,
        mail=outbox.mail,
    )
    return code, out.getvalue()


def test_a_run_logs_notices_alerts_once_and_recovers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config, outbox = make_config(state), Outbox()
    dead = seen(record(), online=False)
    code, out = run(config, dead, outbox, NOW)
    assert code == 2 and out.startswith("CRITICAL: the agent is offline")
    assert "systemctl restart" in (state / NOTICE_FILE).read_text()
    assert [a.event for a in outbox.published] == [notices.AGENT_DEAD]
    assert [(a.event, c) for a, c in outbox.mailed] == [(notices.AGENT_DEAD, ExitCode.CRITICAL)]
    assert run(config, dead, outbox, NOW + 1800)[0] == 2
    assert len(outbox.published) == len(outbox.mailed) == 1  # not every 30 minutes
    code, out = run(config, seen(record(now=NOW + 3600)), outbox, NOW + 3600)
    assert code == 0 and out.startswith("OK: ")
    assert not (state / NOTICE_FILE).exists()
    assert [a.event for a in outbox.published] == [notices.AGENT_DEAD, notices.RECOVERED]
    assert len(outbox.mailed) == 2
    log = (state / HEALTH_LOG_FILE).read_text().splitlines()
    assert [line.split(" ")[1] for line in log] == ["CRITICAL:", "CRITICAL:", "OK:"]
    assert "[alerted: agent_dead]" in log[0] and "alerted" not in log[1]
    assert json.loads((state / MEMORY_FILE).read_text())["event"] is None


def test_recovery_keeps_a_notice_the_agent_wrote_since(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config, outbox = make_config(state), Outbox()
    run(config, seen(record(), online=False), outbox, NOW)
    notice_file.write_notice(state, Alert(notices.AUTH_REQUIRED, "log in again", NOW + 60, "auth"))
    assert run(config, seen(record(now=NOW + 1800)), outbox, NOW + 1800)[0] == 0
    assert "log in again" in (state / NOTICE_FILE).read_text()


def test_without_a_broker_nothing_is_published_but_mail_goes_out(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config, outbox = make_config(state), Outbox()
    stale = Observation(record(age=3600), None, broker_reachable=False, note="broker down")
    assert run(config, stale, outbox, NOW)[0] == 2
    assert outbox.published == [] and len(outbox.mailed) == 1


def test_a_state_dir_it_cannot_write_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, outbox = make_config(tmp_path / "missing"), Outbox()
    code, out = run(config, seen(record(), online=False), outbox, NOW)
    assert code == 2 and out.startswith("CRITICAL:")
    assert "skipping the log and the notice" in caplog.text
    assert len(outbox.published) == len(outbox.mailed) == 1
    assert not (tmp_path / "missing").exists()


def test_a_corrupt_memory_alerts_as_new(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / MEMORY_FILE).write_text("{truncated")
    config, outbox = make_config(state), Outbox()
    assert run(config, seen(record(), online=False), outbox, NOW)[0] == 2
    assert len(outbox.published) == 1
    assert json.loads((state / MEMORY_FILE).read_text())["event"] == notices.AGENT_DEAD
