"""`homeassistant.configuration_url`: the device's "Visit" link in Home Assistant, from the
config, in what the running agent and `mqtt-tokend homeassistant` publish; empty leaves it out.
(Before, every install linked to one hard-coded README address.)"""

from __future__ import annotations

import json

import pytest

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.integration.conftest import AgentProcess, cli
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration

LINK = "http://homeassistant.local:8123/lovelace/spotify"


@pytest.fixture(params=[LINK, ""], ids=["own-link", "no-link"])
def extra_config(request: pytest.FixtureRequest) -> str:
    return f"\n[homeassistant]\nconfiguration_url = {json.dumps(request.param)}\n"


def devices(watch: Watcher, topics: list[str]) -> list[dict[str, object]]:
    """The device object of every discovery message, once each entity has one."""
    found = {topic: watch.on(topic) for topic in topics}
    if not all(found.values()):
        return []
    return [json.loads(seen[-1].payload)["device"] for seen in found.values()]


def test_the_device_links_to_the_configured_url(
    broker: PrivateMosquitto, agent: AgentProcess, base_topic: str, extra_config: str
) -> None:
    wanted = json.loads(extra_config.split(" = ", 1)[1])
    topics = [
        t for t, _ in ha.removal_messages(base_topic=base_topic, discovery_prefix="homeassistant")
    ]
    with Watcher(broker.host, broker.port, "homeassistant/#") as watch:
        found = wait_until(lambda: devices(watch, topics), timeout=10, what="the agent's discovery")
        assert {d.get("configuration_url") for d in found} == {wanted or None}, agent.output()
        watch.messages.clear()
        assert cli(agent.config, "homeassistant").returncode == 0
        found = wait_until(lambda: devices(watch, topics), timeout=10, what="the CLI's discovery")
        assert {d.get("configuration_url") for d in found} == {wanted or None}
