"""A real Home Assistant for the tests in this directory: its configuration (the shipped
automations, script and an MQTT config entry), the `hass` process, a stand-in for the agent, the
entity states Home Assistant mirrors back, and what in its log counts as a problem.

Set `MQTT_TOKEND_HA_VENV` to a virtual environment with `hass` in it:
`tests/homeassistant/setup_ha.sh` makes one (cached outside the repository) and `.ci/run`
does that and sets the variable, so CI always runs these tests; without it they skip
(`pytestmark` here is the skip each test module takes). Home Assistant runs headless on a
private Mosquitto (the `broker` fixture in conftest.py); its MQTT integration is configured by
writing `.storage/core.config_entries`. `mqtt_statestream` mirrors every entity state back onto
the broker, which is how a test sees what Home Assistant made of our messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.topics import ONLINE, Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.integration.watch import Seen, Watcher, wait_until

HA_VENV_ENV = "MQTT_TOKEND_HA_VENV"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "homeassistant"
BASE = ha.DEFAULT_BASE_TOPIC  # the shipped dashboard, automation and script use it
PREFIX = "homeassistant"
STATESTREAM = "hass_states"
NOTIFICATIONS = "notifications.txt"  # what `notify.notify` sends, one message per line
TEST = "test-driver"  # topics the test's own automations listen on
START_TIMEOUT = 120.0
STEP_TIMEOUT = 30.0
IDS = ha.entity_ids(BASE)
TOPICS = Topics(BASE)
OK = ha.STATE_NAMES[State.OK]
WEBHOOK_PLACEHOLDER = "REPLACE-WITH-A-LONG-RANDOM-ID"


def find_hass() -> Path | None:
    venv = os.environ.get(HA_VENV_ENV)
    if not venv:
        return None
    hass = Path(venv) / "bin" / "hass"
    return hass if hass.is_file() else None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        find_hass() is None,
        reason=(
            f"no real Home Assistant: {HA_VENV_ENV}={os.environ.get(HA_VENV_ENV)!r} holds no "
            f"bin/hass. CI installs one (.ci/run); locally run "
            f"{HA_VENV_ENV}=$(tests/homeassistant/setup_ha.sh | tail -n1) ./scripts/test"
        ),
    ),
]


# ---- Home Assistant's configuration ------------------------------------------------------


def write_config(
    config_dir: Path,
    *,
    broker_port: int,
    http_port: int,
    webhook_id: str = "unused-id",
    webhook_automation: Path = DEPLOY / "automation-login-webhook.yaml",
) -> None:
    """configuration.yaml, the shipped automations and script, and the MQTT config entry."""
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(
        f"""
homeassistant:
  name: mqtt-tokend test
  latitude: 52.5
  longitude: 13.4
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
mqtt_statestream:
  base_topic: {STATESTREAM}
  publish_attributes: true
command_line:
  - notify:
      name: notify
      command: "cat >> {config_dir / NOTIFICATIONS}"
webhook:  # part of default_config (through mobile_app, cloud) in a real installation
automation: !include automations.yaml
script: !include scripts.yaml
"""
    )
    automations = yaml.safe_load((DEPLOY / "automation-alerts.yaml").read_text())
    webhook = webhook_automation.read_text()
    assert WEBHOOK_PLACEHOLDER in webhook
    automations += yaml.safe_load(webhook.replace(WEBHOOK_PLACEHOLDER, webhook_id))
    automations += [
        _driver("press", "button.press", IDS["force_refresh"]),
        _driver("check", "button.press", IDS["check_now"]),
        _driver("paste", "text.set_value", IDS["login_redirect"], value="{{ trigger.payload }}"),
        _driver(
            "script", "script.lofi_pi_spotify_login", None, redirect_url="{{ trigger.payload }}"
        ),
    ]
    (config_dir / "automations.yaml").write_text(yaml.safe_dump(automations))
    (config_dir / "scripts.yaml").write_text((DEPLOY / "script-login.yaml").read_text())
    entry = {
        "entry_id": uuid.uuid4().hex,
        "version": 1,
        "minor_version": 1,
        "domain": "mqtt",
        "title": f"127.0.0.1:{broker_port}",
        "data": {"broker": "127.0.0.1", "port": broker_port, "discovery": True},
        "options": {},
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    storage = {
        "version": 1,
        "minor_version": 1,
        "key": "core.config_entries",
        "data": {"entries": [entry]},
    }
    (config_dir / ".storage" / "core.config_entries").write_text(json.dumps(storage))


def _driver(name: str, service: str, entity_id: str | None, **data: str) -> dict[str, Any]:
    """An automation that lets the test press, type and run things through MQTT."""
    action: dict[str, Any] = {"action": service}
    if entity_id:
        action["target"] = {"entity_id": entity_id}
    if data:
        action["data"] = data
    return {
        "id": f"test_{name}",
        "alias": f"test {name}",
        "triggers": [{"trigger": "mqtt", "topic": f"{TEST}/{name}"}],
        "actions": [action],
    }


class HomeAssistant:
    """`hass -c DIR --skip-pip` as a child process; stopped with SIGTERM (a clean shutdown)."""

    def __init__(self, hass: Path, config_dir: Path) -> None:
        self.hass, self.config_dir = hass, config_dir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HomeAssistant:
        out = (self.config_dir / "hass.out").open("ab")
        self.process = subprocess.Popen(
            [str(self.hass), "-c", str(self.config_dir), "--skip-pip"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise

    def __exit__(
        self, _t: type[BaseException] | None, _v: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_started(self, seen: Watcher, *, after: float = 0.0) -> None:
        """Until Home Assistant's MQTT birth message; fail early if `hass` exits instead."""
        status = ha.status_topic(PREFIX)

        def started() -> bool:
            if self.process is None or self.process.poll() is not None:
                out = (self.config_dir / "hass.out").read_text(errors="replace")[-3000:]
                raise AssertionError(f"hass exited before its birth message:\n{out}")
            return any(
                m.at >= after and ha.is_birth(m.topic, m.payload, discovery_prefix=PREFIX)
                for m in seen.on(status)
            )

        wait_until(started, timeout=START_TIMEOUT, what="Home Assistant's birth message")

    def log(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def storage(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config_dir / ".storage" / key).read_text())
        return data


# ---- the agent's side ---------------------------------------------------------------------


class Agent:
    """Publishes what mqtt-tokend would, and re-announces discovery on Home Assistant's birth."""

    def __init__(self, broker: PrivateMosquitto) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fake-agent")
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        self.expire_after = 600
        self.answer_births = True

    def publish(self, topic: str, payload: str, *, retain: bool) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def discovery(self) -> None:
        for topic, payload in ha.discovery_messages(
            base_topic=BASE,
            discovery_prefix=PREFIX,
            version="9.9.9",
            expire_after=self.expire_after,
            support_url="https://example.invalid/mqtt-tokend",
        ):
            self.publish(topic, payload, retain=True)

    def on_seen(self, seen: Seen) -> None:
        if self.answer_births and ha.is_birth(seen.topic, seen.payload, discovery_prefix=PREFIX):
            self.discovery()
            self.publish(TOPICS.availability, ONLINE, retain=True)

    def health(self, **record: Any) -> dict[str, Any]:
        now = time.time()
        full = {
            "state": "ok",
            "message": "token refreshed",
            "expires_at": now + 3000,
            "last_refresh": now - 600,
            "next_refresh": now + 2400,
            "consecutive_failures": 0,
            "instructions": None,
            "checked_at": now,
            "user": "owner",
            "version": "9.9.9",
            "reauth_by": now + 170 * 86400,
        } | record
        self.publish(TOPICS.health, json.dumps(full), retain=True)
        return full

    def login_url(self, url: str | None) -> None:
        """The login on offer on `<base>/login`; None clears it (an empty retained message)."""
        self.publish(TOPICS.login, url or "", retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- what Home Assistant made of it -------------------------------------------------------


class States:
    """Entity states and attributes as mqtt_statestream publishes them."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.since = 0.0  # only messages that arrived after this (monotonic) count

    def _last(self, topic: str) -> bytes | None:
        seen = [m for m in self.watcher.on(topic) if m.at >= self.since]
        return seen[-1].payload if seen else None

    def state(self, entity_id: str) -> str | None:
        payload = self._last(f"{STATESTREAM}/{entity_id.replace('.', '/')}/state")
        return None if payload is None else payload.decode()

    def attribute(self, entity_id: str, name: str) -> Any:
        payload = self._last(f"{STATESTREAM}/{entity_id.replace('.', '/')}/{name}")
        return None if payload is None else json.loads(payload)

    def wait(self, entity_id: str, expected: str, *, timeout: float = STEP_TIMEOUT) -> str:
        wait_until(
            lambda: self.state(entity_id) == expected,
            timeout=timeout,
            what=f"{entity_id} == {expected!r} (now {self.state(entity_id)!r})",
        )
        return expected

    def wait_attribute(self, entity_id: str, name: str, expected: Any) -> None:
        """statestream sends the state, then one message per attribute: wait for this one."""
        wait_until(
            lambda: self.attribute(entity_id, name) == expected,
            timeout=STEP_TIMEOUT,
            what=f"{entity_id}[{name}] == {expected!r} (now {self.attribute(entity_id, name)!r})",
        )

    def wait_time(self, entity_id: str, unix: float) -> None:
        def close() -> bool:
            state = self.state(entity_id)
            try:
                parsed = datetime.fromisoformat(state or "")
            except ValueError:
                return False
            return parsed.tzinfo is not None and abs(parsed.timestamp() - unix) < 1.0

        expected = datetime.fromtimestamp(unix, UTC).isoformat()
        wait_until(close, timeout=STEP_TIMEOUT, what=f"{entity_id} at {expected}")


def version(config_dir: Path) -> tuple[int, ...]:
    """Home Assistant's release, from the file it writes into its configuration directory."""
    text = (config_dir / ".HA_VERSION").read_text().strip()
    return tuple(int(part) for part in text.split(".")[:2])


OURS = ("lofi", "mqtt_tokend")  # entity ids, unique ids, topics (not a path like mqtt-tokend/)


def log_problems(log: str, *, version: tuple[int, ...]) -> list[str]:
    """Errors and warnings about our entities, and any deprecation or invalid MQTT config."""
    # 2024.1 warns "Invalid state message" for a timestamp sensor whose template says `None`
    # (a null in the health record) and still shows unknown; 2024.2 and later take it quietly.
    tolerated = "Invalid state message" if version < (2024, 2) else None
    problems = []
    for line in log.splitlines():
        lower = line.lower()
        ours = any(word in lower for word in OURS)
        mqtt = "mqtt" in lower
        level = " ERROR " in line or " WARNING " in line
        if tolerated and tolerated in line and '"expires_at": null' in line:
            continue
        if (
            (ours and level)
            or ("deprecat" in lower and (ours or mqtt))
            or ("invalid config" in lower and (ours or mqtt))
            or (level and "homeassistant.components.mqtt" in line)
        ):
            problems.append(line)
    return problems


def check_log(home: HomeAssistant) -> None:
    """No error, warning, deprecation or invalid config about our entities or MQTT."""
    problems = log_problems(home.log(), version=version(home.config_dir))
    print(f"Home Assistant {_release(home.config_dir)}: {len(problems)} problems in its log")
    assert not problems, "\n".join(problems)


def _release(config_dir: Path) -> str:
    return (config_dir / ".HA_VERSION").read_text().strip()
