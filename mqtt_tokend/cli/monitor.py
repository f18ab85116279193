"""The redundant health check (`mqtt-tokend health-check`): notices when the agent itself fails.

Run by a timer or cron, independent of the agent. It reads the retained availability and
health from the broker (the agent's status file when the broker cannot be reached or holds
nothing), judges them, appends a line to ``token_health.log``, and on a problem writes the
notice, publishes an alert on ``<base>/alert`` (unless the live agent already did: one problem,
one notification) and sends an optional e-mail. A small record, ``health_check_state.json``,
keeps it from alerting the same problem more than once a day, and lets it announce the
recovery (and remove its own notice) once the problem is gone.

The judging (`assess`) and the deduplication (`decide`) are pure: core/monitor_rules.py.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import ssl
import sys
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, TextIO

from mqtt_tokend.adapters import notice_file
from mqtt_tokend.adapters.broker_errors import refused_login
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.adapters.store import (
    HEALTH_LOG_FILE,
    STATUS_FILE,
    read_json,
    read_status,
    write_json,
)
from mqtt_tokend.config import AlertsConfig, Config
from mqtt_tokend.contract import notices, wire
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.contract.topics import OFFLINE, Topics
from mqtt_tokend.contract.wording import forced_client_id_warning, one_line
from mqtt_tokend.core.monitor_rules import (
    Memory,
    Observation,
    Plan,
    assess,
    decide,
    digest,
    stuck_but_online,
)
from mqtt_tokend.errors import BrokerError, BrokerLoginRefused, StoreError

_LOG = logging.getLogger(__name__)

MEMORY_FILE = "health_check_state.json"
LOG_MAX_BYTES = 1_000_000  # token_health.log is moved to .1 past this (about 20 years of runs)


def mark_offline(config: Config, *, timeout: float) -> None:
    """Retained `offline` on `<base>/availability`; a failure is a warning."""
    topic = Topics(config.mqtt.base_topic).availability
    try:
        with oneshot(config.mqtt, timeout=timeout, purpose="health-check") as session:
            session.publish(topic, OFFLINE, retain=True, timeout=timeout)
    except BrokerError as err:
        _LOG.warning("could not mark the stuck agent offline on %s: %s", topic, err)


# ---- the edges ----------------------------------------------------------------------------


def _status_file(config: Config) -> tuple[dict[str, Any] | None, str]:
    path = config.agent.state_dir / STATUS_FILE
    try:
        health = read_status(config.agent.state_dir)
    except StoreError as err:
        return None, str(err)
    return health, "" if health is not None else f"no status file {path}"


def observe(config: Config, *, timeout: float) -> Observation:
    """Read the retained records from the broker; the status file when that is not possible."""
    topics = Topics(config.mqtt.base_topic)
    try:
        with oneshot(config.mqtt, timeout=timeout, purpose="health-check") as session:
            retained = session.retained([topics.health, topics.availability], timeout=timeout)
    except BrokerLoginRefused as err:  # the broker is up: never "unreachable", never the file's OK
        refusal = refused_login(config, err)
        return Observation(None, None, broker_reachable=False, login_refused=refusal)
    except BrokerError as err:
        health, _problem = _status_file(config)
        return Observation(health, None, broker_reachable=False, note=one_line(str(err)))
    forced = forced_client_id_warning(config.mqtt.username) if session.forced_client_id else None
    availability = retained.get(topics.availability)
    online = wire.availability(availability.payload if availability else None)
    record = retained.get(topics.health)
    health = wire.json_object(record.payload if record else None)
    if health is not None:
        return Observation(health, online, broker_reachable=True, forced_client_id=forced)
    # A broker restarted without persistence forgets everything retained: ask the file.
    health, problem = _status_file(config)
    note = "no health record on the broker; " + (problem or "judged from the agent's status file")
    return Observation(health, online, broker_reachable=True, note=note, forced_client_id=forced)


def publish_alert(config: Config, alert: Alert, *, timeout: float) -> None:
    """Publish the alert (QoS 1, not retained); a failure is a warning."""
    topic = Topics(config.mqtt.base_topic).alert
    try:
        with oneshot(config.mqtt, timeout=timeout, purpose="health-check") as session:
            session.publish(topic, json.dumps(alert.to_payload()), timeout=timeout)
    except BrokerError as err:
        _LOG.warning("could not publish the alert on %s: %s", topic, err)


def send_email(alerts: AlertsConfig, alert: Alert, *, code: ExitCode) -> bool:
    """E-mail the alert to `alerts.email_to`; False (and a warning) when that fails."""
    if not alerts.email_to:
        return False
    host = socket.gethostname()
    what = "recovered" if alert.event == notices.RECOVERED else f"{code.name}: {alert.event}"
    message = EmailMessage()
    message["Subject"] = f"[mqtt-tokend] {what} on {host}"
    message["From"] = alerts.email_from or f"mqtt-tokend@{host}"
    message["To"] = ", ".join(alerts.email_to)
    message["Date"] = formatdate(alert.at, localtime=True)
    message["Message-ID"] = make_msgid(domain=host)
    message.set_content(
        f"{alert.message}\n\n"
        + (f"What to do:\n  {alert.instructions}\n\n" if alert.instructions else "")
        + f"Host: {host}\nWhen: {_stamp(alert.at)}\nEvent: {alert.event}\n"
        "Sent by `mqtt-tokend health-check`.\n"
    )
    try:
        with smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=alerts.smtp_timeout) as smtp:
            if alerts.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if alerts.smtp_username:
                smtp.login(alerts.smtp_username, alerts.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as err:
        _LOG.warning(
            "could not send the alert e-mail via %s:%d: %s",
            alerts.smtp_host,
            alerts.smtp_port,
            one_line(str(err)) or type(err).__name__,
        )
        return False
    _LOG.info("e-mailed the %s alert to %s", alert.event, ", ".join(alerts.email_to))
    return True


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def append_log(state_dir: Path, line: str) -> None:
    """Append one line to token_health.log (moved aside to .1 once it grows past 1 MB); the
    log is 0600 whatever the umask, and one an older version left 0644 becomes 0600."""
    path = state_dir / HEALTH_LOG_FILE
    try:
        if path.stat().st_size > LOG_MAX_BYTES:
            path.replace(path.with_name(f"{HEALTH_LOG_FILE}.1"))
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        handle.write(line + "\n")


def _load_memory(state_dir: Path) -> Memory:
    try:
        return Memory.from_dict(read_json(state_dir / MEMORY_FILE))
    except StoreError as err:
        _LOG.warning("%s; alerting as if for the first time", err)
        return Memory()


def _apply_files(state_dir: Path, plan: Plan, log_line: str) -> None:
    """The state directory's part; a directory this user cannot write is only a warning."""
    try:
        append_log(state_dir, log_line)
        if plan.notice is not None:
            notice_file.write_notice(state_dir, plan.notice)
        current = notice_file.read_notice(state_dir)
        if plan.clear_notice and current is not None and digest(current) == plan.clear_notice:
            notice_file.clear_notice(state_dir)  # ours and unchanged: the agent's stay
        write_json(state_dir / MEMORY_FILE, plan.memory.to_dict(), mode=0o600)
    except OSError as err:
        hint = " (run it as the agent's user)" if isinstance(err, PermissionError) else ""
        _LOG.warning(
            "cannot write to the state directory %s (%s): skipping the log and the notice%s",
            state_dir,
            err.strerror or err,
            hint,
        )


def health_check(
    config: Config,
    *,
    timeout: float,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
    look: Callable[..., Observation] = observe,
    publish: Callable[..., None] = publish_alert,
    mail: Callable[..., bool] = send_email,
    offline: Callable[..., None] = mark_offline,
) -> int:
    """One run of the monitor: judge, log, notify; return the Nagios exit code."""
    state_dir = config.agent.state_dir
    observation = look(config, timeout=timeout)
    now = clock()
    verdict = assess(
        observation,
        now=now,
        check_interval=config.agent.check_interval,
        config_path=str(config.path) if config.path else None,
    )
    try:
        notice_present = notice_file.read_notice(state_dir) is not None
    except OSError:
        notice_present = False
    plan = decide(verdict, _load_memory(state_dir), now=now, notice_present=notice_present)
    alerted = ""
    if plan.alert is not None:
        alerted = f" [{'alerted' if plan.publish else 'left to the agent'}: {plan.alert.event}]"
    _apply_files(state_dir, plan, f"{_stamp(now)} {verdict.line()}{alerted}")
    if stuck_but_online(observation, now=now, check_interval=config.agent.check_interval):
        offline(config, timeout=timeout)
    if plan.alert is not None:
        if observation.broker_reachable and plan.publish:
            publish(config, plan.alert, timeout=timeout)
        mail(config.alerts, plan.alert, code=verdict.code)
    print(verdict.line(), file=out)
    if verdict.instructions and verdict.code != ExitCode.OK:
        print(f"What to do: {verdict.instructions}", file=out)  # the fix, where it is read
    return int(verdict.code)
