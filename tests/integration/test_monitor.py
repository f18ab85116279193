"""`mqtt-tokend health-check` as cron runs it: a real agent, a private Mosquitto, a test SMTP."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters.store import read_status
from mqtt_tokend.cli.monitor import send_email
from mqtt_tokend.config import AlertsConfig
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.notices import NOTICE_FILE, Alert
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from tests.integration.conftest import AgentProcess, cli
from tests.integration.watch import Seen, Watcher, wait_until
from tests.smtp import SmtpServer

pytestmark = pytest.mark.integration

WRAPPER = Path(__file__).parents[2] / "deploy" / "check_token_health.sh"
OPS = "ops@example.com"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP receiver of our own on a free port."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def extra_config(smtp: SmtpServer) -> str:
    """Alert e-mail to the test SMTP server (a section after [agent])."""
    return f"""
[alerts]
email_to = ["{OPS}"]
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
smtp_timeout = 5
"""


def healthy(message: Seen) -> bool:
    return bool(message.payload) and message.json()["state"] == "ok"


def alerts(watcher: Watcher, base_topic: str) -> list[str]:
    return [m.json()["event"] for m in watcher.on(Topics(base_topic).alert)]


def state_dir(config: Path) -> Path:
    return config.parent / "state"


def test_health_check_is_ok_while_the_agent_runs(
    agent: AgentProcess, watcher: Watcher, base_topic: str, smtp: SmtpServer
) -> None:
    watcher.wait_for(Topics(base_topic).health, healthy)
    result = cli(agent.config, "health-check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ok: token valid for")
    log = (state_dir(agent.config) / "token_health.log").read_text().splitlines()
    assert len(log) == 1 and " OK: ok: token valid for" in log[0]
    assert smtp.received == [] and alerts(watcher, base_topic) == []


def test_a_killed_agent_is_critical_once_with_notice_alert_and_email_then_recovers(
    agent: AgentProcess, watcher: Watcher, base_topic: str, smtp: SmtpServer
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    agent.kill9()
    watcher.wait_for(topics.availability, lambda m: m.payload == b"offline")  # the Last Will

    result = cli(agent.config, "health-check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("CRITICAL: the agent is offline")
    notice = (state_dir(agent.config) / "auth_failure_notice.txt").read_text()
    assert "sudo systemctl restart lofi-pi-token-manager" in notice
    assert "journalctl -u lofi-pi-token-manager -n 50" in notice
    alert = watcher.wait_for(topics.alert)
    assert not alert.retain
    assert alert.json()["event"] == notices.AGENT_DEAD
    assert "systemctl restart" in alert.json()["instructions"]
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_to == (OPS,)
    assert "CRITICAL: agent_dead" in mail.message["Subject"]
    assert "systemctl restart" in mail.message.get_content()

    again = cli(agent.config, "health-check")  # 30 minutes later: the same problem, no e-mail
    assert again.returncode == 2
    assert len(smtp.received) == 1

    restarted = time.monotonic()
    revived = AgentProcess(agent.config).start()
    try:
        watcher.wait_for(topics.health, healthy, after=restarted)
        result = cli(agent.config, "health-check")
        assert result.returncode == 0, result.stdout + result.stderr
        assert not (state_dir(agent.config) / "auth_failure_notice.txt").exists()
        watcher.wait_for(topics.alert, lambda m: m.json()["event"] == notices.RECOVERED)
        assert alerts(watcher, base_topic) == [notices.AGENT_DEAD, notices.RECOVERED]
        assert "recovered" in smtp.wait_for(2)[1].message["Subject"]
    finally:
        revived.stop()
    log = (state_dir(agent.config) / "token_health.log").read_text().splitlines()
    assert [line.split(" ")[1] for line in log] == ["CRITICAL:", "CRITICAL:", "OK:"]


def test_a_stuck_agent_is_critical_although_it_looks_online(
    logged_in: Path, watcher: Watcher, base_topic: str
) -> None:
    text = logged_in.read_text()
    logged_in.write_text(text.replace("check_interval = 60", "check_interval = 1"))
    topics = Topics(base_topic)
    agent = AgentProcess(logged_in).start()
    try:
        watcher.wait_for(topics.availability, lambda m: m.payload == b"online")
        watcher.wait_for(topics.health, healthy)
        assert agent.process is not None
        agent.process.send_signal(signal.SIGSTOP)  # alive for the broker until its keepalive

        def silent_for_two_intervals() -> bool:
            checked_at: float = watcher.on(topics.health)[-1].json()["checked_at"]
            return time.time() > checked_at + 2 * 1 + 0.2

        wait_until(silent_for_two_intervals, timeout=10, what="two missed health checks")
        result = cli(logged_in, "health-check")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "online but stuck" in result.stdout
        assert watcher.wait_for(topics.alert).json()["event"] == notices.AGENT_DEAD
    finally:
        # SIGKILL, not SIGCONT: a resumed agent would publish what it prepared seconds ago.
        agent.kill9()


def test_with_the_broker_down_health_check_is_critical_though_the_agent_said_ok(
    agent: AgentProcess, watcher: Watcher, base_topic: str, broker: PrivateMosquitto
) -> None:
    """Issue 12, item 1: the status file says ok; no consumer can get a token."""
    watcher.wait_for(Topics(base_topic).health, healthy)
    wait_until(
        lambda: (read_status(agent.config.parent / "state") or {}).get("state") == "ok",
        timeout=10,
        what="the status file to say ok",
    )
    broker.stop()
    result = cli(agent.config, "health-check", "--timeout", "2")
    assert result.returncode == ExitCode.CRITICAL, result.stdout + result.stderr
    assert result.stdout.startswith(
        "CRITICAL: cannot reach the MQTT broker, so no consumer can get a token"
    )
    assert f"127.0.0.1:{broker.port}" in result.stdout


def test_a_closed_port_is_critical_with_the_fix_whatever_the_status_file_says(
    config_file: Path,
) -> None:
    state = config_file.parent / "state"
    state.mkdir(exist_ok=True)
    (state / "auto_token_status.json").write_text(
        f'{{"state": "ok", "message": "token valid", "checked_at": {time.time()}, '
        f'"expires_at": {time.time() + 3600}}}'
    )
    closed = free_port()  # nothing listens here
    config = config_file.with_name("closed-port.toml")
    text = config_file.read_text()
    config.write_text(
        text[: text.index("port = ")]
        + f"port = {closed}\n"
        + text[text.index("\n", text.index("port = ")) + 1 :]
    )
    config.chmod(0o600)
    result = cli(config, "health-check", "--timeout", "2")
    assert result.returncode == ExitCode.CRITICAL, result.stdout + result.stderr
    assert f"127.0.0.1:{closed}" in result.stdout
    notice = (state / NOTICE_FILE).read_text()
    assert "sudo systemctl status mosquitto" in notice
    assert "Traceback" not in result.stderr


def test_the_cron_wrapper_passes_the_config_and_the_exit_code(
    config_file: Path, broker: PrivateMosquitto, tmp_path: Path
) -> None:
    broker.stop()
    shim = tmp_path / "bin" / "mqtt-tokend"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mqtt_tokend "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "MQTT_TOKEND_CONFIG": str(config_file)}
    runs = [env | {"MQTT_TOKEND_BIN": str(shim)}]
    if not Path("/opt/mqtt-tokend/venv/bin/mqtt-tokend").exists():  # it would come first
        runs.append(env | {"PATH": f"{shim.parent}:/usr/bin:/bin"})
    for run_env in runs:
        result = subprocess.run(
            [str(WRAPPER), "--timeout", "2"],
            capture_output=True,
            text=True,
            env=run_env,
            timeout=30,
            check=False,
        )
        # 2, not 78: the config was found, and the broker it names is down.
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout.startswith("CRITICAL: cannot reach the MQTT broker")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_cron_wrapper_is_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", str(WRAPPER)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


# ---- the e-mail on its own ----------------------------------------------------------------

ALERT = Alert(notices.AGENT_DEAD, "the agent is offline", time.time(), "restart it")


def test_email_logs_in_when_a_user_is_configured() -> None:
    with SmtpServer(accounts={("monitor", "s3cret-pw")}) as server:
        alerts = AlertsConfig(
            email_to=(OPS, "me@example.org"),
            email_from="pi@example.org",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_username="monitor",
            smtp_password="s3cret-pw",
        )
        assert send_email(alerts, ALERT, code=ExitCode.CRITICAL)
        (mail,) = server.wait_for(1)
    assert mail.login == ("monitor", "s3cret-pw")
    assert mail.mail_from == "pi@example.org"
    assert mail.rcpt_to == (OPS, "me@example.org")
    body = mail.message.get_content()
    assert "the agent is offline" in body and "restart it" in body


def test_email_failures_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer(accounts={("monitor", "right")}) as server:
        wrong = AlertsConfig(
            email_to=(OPS,),
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_username="monitor",
            smtp_password="wrong-password",
        )
        assert not send_email(wrong, ALERT, code=ExitCode.CRITICAL)
        assert server.received == []
    closed = AlertsConfig(email_to=(OPS,), smtp_host="127.0.0.1", smtp_port=free_port())
    assert not send_email(closed, ALERT, code=ExitCode.CRITICAL)
    assert caplog.text.count("could not send the alert e-mail") == 2
    assert "wrong-password" not in caplog.text
    assert not send_email(AlertsConfig(), ALERT, code=ExitCode.CRITICAL)  # nobody to tell
