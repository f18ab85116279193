"""A real Home Assistant builds the device from our discovery: states, commands, alerts, expiry,
the registry, and removal.

The test plays the agent: it answers Home Assistant's birth message with the discovery
messages, then publishes health records, login URLs and alerts, and reads the entity states
Home Assistant mirrors back (real_ha.py holds Home Assistant, its configuration and the
helpers). The shipped automations (alerts, one-tap login webhook), script and dashboard entity
ids are loaded into the same instance. test_one_tap.py runs the real agent against the Spotify
emulator and logs it in through Home Assistant's webhook, and test_webhook_flood.py does that
amid a flood. Each fails on any error or deprecation warning Home Assistant logs about our
entities or about MQTT.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.topics import OFFLINE, ONLINE
from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from tests.homeassistant.real_ha import (
    BASE,
    IDS,
    NOTIFICATIONS,
    OK,
    PREFIX,
    STEP_TIMEOUT,
    TEST,
    TOPICS,
    Agent,
    HomeAssistant,
    States,
    check_log,
    find_hass,
    pytestmark,
    version,
    write_config,
)
from tests.integration.watch import Watcher, wait_until

__all__ = ["pytestmark"]  # the skip without a real Home Assistant


def test_real_home_assistant_builds_the_device(tmp_path: Path, broker: PrivateMosquitto) -> None:
    """Discovery, states, commands, alerts, expiry, the registry, and removal."""
    hass = find_hass()
    assert hass is not None
    config_dir = tmp_path / "ha"
    write_config(config_dir, broker_port=broker.port, http_port=free_port())
    agent = Agent(broker)
    started = time.monotonic()
    try:
        with Watcher(broker.host, broker.port, "#", on_seen=agent.on_seen) as seen:
            states = States(seen)
            with HomeAssistant(hass, config_dir) as home:
                home.wait_started(seen)
                _check_states_commands_and_alerts(agent, seen, states, config_dir)
            _check_registry_and_restore_state(home)
            check_log(home)
            # A second start builds everything from the retained messages alone; then the
            # removal messages take the device away.
            agent.answer_births = False
            restarted = states.since = time.monotonic()
            with HomeAssistant(hass, config_dir) as home:
                home.wait_started(seen, after=restarted)
                states.wait(IDS["token_state"], OK)
                states.wait(IDS["agent"], "on")
                for topic, payload in ha.removal_messages(base_topic=BASE, discovery_prefix=PREFIX):
                    agent.publish(topic, payload, retain=True)
                wait_until(
                    lambda: all(f"Removing component: {e}" in home.log() for e in IDS.values()),
                    timeout=STEP_TIMEOUT,
                    what="Home Assistant removing every entity",
                )
            check_log(home)
            registry = home.storage("core.entity_registry")["data"]["entities"]
            assert not {e["entity_id"] for e in registry} & set(IDS.values())
            devices = home.storage("core.device_registry")["data"]["devices"]
            assert not [d for d in devices if d["name"] == ha.DEVICE_NAME]
    finally:
        agent.close()
    print(f"real Home Assistant test: {time.monotonic() - started:.1f} s")


def _check_states_commands_and_alerts(
    agent: Agent, seen: Watcher, states: States, config_dir: Path
) -> None:
    # A healthy agent.
    record = agent.health()
    states.wait(IDS["token_state"], OK)
    states.wait(IDS["agent"], "on")
    states.wait_time(IDS["token_expiry"], record["expires_at"])
    states.wait_time(IDS["last_refresh"], record["last_refresh"])
    states.wait_time(IDS["next_refresh"], record["next_refresh"])
    states.wait_time(IDS["reauth_by"], record["reauth_by"])
    states.wait(IDS["consecutive_failures"], "0")
    states.wait(IDS["problem"], "off")
    states.wait(IDS["login"], ha.LOGIN_OK)
    # `options` came to MQTT sensors in 2024.2; 2024.1 drops the key and takes any state.
    options = list(ha.STATE_OPTIONS) if version(config_dir) >= (2024, 2) else None
    states.wait_attribute(IDS["token_state"], "options", options)
    states.wait_attribute(IDS["alert"], "event_types", list(ha.EVENT_TYPES))

    # The button and the text entity publish what the agent expects.
    start = time.monotonic()
    agent.publish(f"{TEST}/press", "", retain=False)
    press = seen.wait_for(TOPICS.request("refresh"), timeout=STEP_TIMEOUT, after=start)
    assert json.loads(press.payload) == {"reason": "home_assistant"}
    assert not press.retain
    agent.publish(f"{TEST}/check", "", retain=False)
    check = seen.wait_for(TOPICS.request("check"), timeout=STEP_TIMEOUT, after=start)
    assert json.loads(check.payload) == {"reason": "home_assistant"}
    assert not check.retain
    url = f"http://127.0.0.1:8888/callback?code={'A' * 150}&state={'s' * 32}"
    agent.publish(f"{TEST}/paste", url, retain=False)
    pasted = seen.wait_for(TOPICS.request("auth"), timeout=STEP_TIMEOUT, after=start)
    assert pasted.payload.decode() == url
    # Longer than a text entity may hold: the shipped script carries it whole.
    long_url = f"http://127.0.0.1:8888/callback?code={'B' * 330}&state={'t' * 32}"
    agent.publish(f"{TEST}/script", long_url, retain=False)
    seen.wait_for(
        TOPICS.request("auth"),
        lambda m: m.payload.decode() == long_url,
        timeout=STEP_TIMEOUT,
        after=start,
    )
    assert states.state(IDS["login_redirect"]) == ""  # the pasted code is never kept

    # A login is needed: nulls, the login link (on its own topic), the problem sensor.
    auth_url = "https://accounts.spotify.com/authorize?client_id=abc&state=xyz"
    agent.health(
        state="auth_required",
        message="Spotify refused the refresh token",
        instructions="Open the link and paste the address back.",
        expires_at=None,
        last_refresh=None,
        next_refresh=None,
        consecutive_failures=3,
    )
    agent.login_url(auth_url)
    states.wait(IDS["token_state"], ha.LOGIN_NEEDED)
    states.wait(IDS["problem"], "on")
    states.wait(IDS["login"], ha.LOGIN_NEEDED)
    states.wait(IDS["token_expiry"], "unknown")
    states.wait(IDS["last_refresh"], "unknown")
    states.wait(IDS["consecutive_failures"], "3")
    states.wait_attribute(IDS["login"], "auth_url", auth_url)
    states.wait_attribute(
        IDS["token_state"], "instructions", "Open the link and paste the address back."
    )
    states.wait_attribute(IDS["token_state"], "message", "Spotify refused the refresh token")
    agent.login_url(None)  # the login is withdrawn: no link any more
    states.wait_attribute(IDS["login"], "auth_url", None)

    # Alerts become events, and the shipped automation notifies.
    notifications = config_dir / NOTIFICATIONS

    def notified(text: str) -> bool:
        return notifications.is_file() and text in notifications.read_text()

    alert = {
        "event": "auth_required",
        "message": "Spotify needs a new login",
        "instructions": "Open the dashboard and log in.",
        "at": time.time(),
    }
    agent.publish(TOPICS.alert, json.dumps(alert), retain=False)
    wait_until(
        lambda: states.attribute(IDS["alert"], "event_type") == "auth_required",
        timeout=STEP_TIMEOUT,
        what="the alert event entity",
    )
    states.wait_attribute(IDS["alert"], "message", alert["message"])
    wait_until(lambda: notified("Spotify needs a new login"), timeout=STEP_TIMEOUT, what="notify")
    assert notified("Open the dashboard and log in.")
    unknown = alert | {"event": "something_new", "message": "a future alert"}
    agent.publish(TOPICS.alert, json.dumps(unknown), retain=False)
    wait_until(
        lambda: states.attribute(IDS["alert"], "event_type") == ha.OTHER_EVENT,
        timeout=STEP_TIMEOUT,
        what="an unknown alert as 'other'",
    )

    # The agent goes offline (its Last Will): the agent sensor turns off, the health-driven
    # entities unavailable, and the health check's agent_dead alert still reaches the owner.
    agent.publish(TOPICS.availability, OFFLINE, retain=True)
    states.wait(IDS["agent"], "off")
    states.wait(IDS["token_state"], "unavailable")
    states.wait(IDS["problem"], "unavailable")
    dead = {"event": "agent_dead", "message": "the agent stopped answering", "at": time.time()}
    agent.publish(TOPICS.alert, json.dumps(dead), retain=False)
    wait_until(lambda: notified("the agent stopped answering"), timeout=STEP_TIMEOUT, what="dead")
    agent.publish(TOPICS.availability, ONLINE, retain=True)
    agent.health()
    states.wait(IDS["token_state"], OK)
    states.wait(IDS["agent"], "on")

    # A stuck agent (no Last Will, no new health record) turns unavailable by expire_after.
    agent.expire_after = 2
    agent.discovery()
    agent.health()
    states.wait(IDS["token_state"], "unavailable", timeout=STEP_TIMEOUT)
    agent.expire_after = 600
    agent.discovery()
    agent.health()
    states.wait(IDS["token_state"], OK)


def _check_registry_and_restore_state(home: HomeAssistant) -> None:
    entities = {
        e["entity_id"]: e
        for e in home.storage("core.entity_registry")["data"]["entities"]
        if e["platform"] == "mqtt"
    }
    assert set(entities) == set(IDS.values())
    for key, entity_id in IDS.items():
        assert entities[entity_id]["unique_id"] == f"mqtt_tokend_{ha.node_id_for(BASE)}_{key}"
    assert entities[IDS["reauth_by"]]["entity_category"] == "diagnostic"
    assert entities[IDS["consecutive_failures"]]["entity_category"] == "diagnostic"
    assert entities[IDS["token_state"]]["entity_category"] is None
    devices = [
        d
        for d in home.storage("core.device_registry")["data"]["devices"]
        if ["mqtt", f"mqtt_tokend_{ha.node_id_for(BASE)}"] in d["identifiers"]
    ]
    assert len(devices) == 1
    assert devices[0]["name"] == ha.DEVICE_NAME
    assert devices[0]["sw_version"] == "9.9.9"
    assert {entities[e]["device_id"] for e in IDS.values()} == {devices[0]["id"]}
    restored = {
        s["state"]["entity_id"]: s["state"] for s in home.storage("core.restore_state")["data"]
    }
    assert restored[IDS["token_state"]]["state"] == OK
    assert restored[IDS["alert"]]["attributes"]["event_type"] == "agent_dead"
