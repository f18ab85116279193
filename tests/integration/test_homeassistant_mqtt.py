"""Home Assistant over the real broker: discovery, re-publish on birth, removal by the CLI."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mqtt_tokend.contract import homeassistant
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.integration.conftest import AgentProcess, cli
from tests.integration.helpers import mosquitto_pub
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


def configs(watcher: Watcher, after: float = 0.0) -> dict[str, bytes]:
    return {
        m.topic: m.payload
        for m in watcher.messages
        if m.topic.endswith("/config") and m.at >= after
    }


def test_discovery_on_connect_again_on_birth_and_removed_on_request(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str
) -> None:
    with Watcher(broker.host, broker.port, "homeassistant/#") as ha:
        expected = len(
            homeassistant.removal_messages(base_topic=base_topic, discovery_prefix="homeassistant")
        )
        first = wait_until(
            lambda: len(configs(ha)) == expected and configs(ha), timeout=10, what="discovery"
        )
        device = {json.loads(p)["device"]["name"] for p in first.values()}
        assert device == {f"LoFi Pi Spotify ({base_topic})"}  # one device; named by its base
        assert not any(f"{base_topic}/token" in p.decode() for p in first.values())
        born = time.monotonic()
        mosquitto_pub(broker, "homeassistant/status", "-m", "online")
        again = wait_until(
            lambda: set(configs(ha, born)) == set(first) and configs(ha, born),
            timeout=10,
            what="discovery again after the birth message",
        )
        assert again.keys() == first.keys()
        removed_at = time.monotonic()
        result = cli(agent.config, "homeassistant", "--remove")
        assert result.returncode == 0, result.stderr
        gone = wait_until(
            lambda: (
                all(p == b"" for p in configs(ha, removed_at).values())
                and len(configs(ha, removed_at)) == len(first)
            ),
            timeout=10,
            what="the removal",
        )
        assert gone


def test_the_discovered_buttons_drive_the_real_agent(
    agent: AgentProcess, broker: PrivateMosquitto, base_topic: str
) -> None:
    """What Home Assistant sends on a press (read from the retained config) reaches the agent."""
    topics = Topics(base_topic)
    with Watcher(broker.host, broker.port, "#") as seen:

        def buttons() -> dict[str, Any] | None:
            found = {
                m.topic.split("/")[3]: json.loads(m.payload)
                for m in seen.messages
                if m.topic.startswith("homeassistant/button/") and m.payload
            }
            return found if set(found) >= {"check_now", "force_refresh"} else None

        found = wait_until(buttons, timeout=10, what="the button configs")
        for key, verb in (("check_now", "check"), ("force_refresh", "refresh")):
            button = found[key]
            assert button["command_topic"] == topics.request(verb)
            pressed = time.monotonic()
            mosquitto_pub(broker, button["command_topic"], "-m", button["payload_press"])
            answer = seen.wait_for(topics.response(verb), after=pressed, timeout=10)
            assert answer.json()["status"] == "ok", answer.json()
