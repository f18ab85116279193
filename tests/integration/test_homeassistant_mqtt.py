"""Home Assistant over the real broker: discovery, re-publish on birth, removal by the CLI."""

from __future__ import annotations

import json
import time

import pytest

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
        first = wait_until(
            lambda: len(configs(ha)) >= 10 and configs(ha), timeout=10, what="discovery"
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
