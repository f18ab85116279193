"""Home Assistant discovery: payloads per platform schema, topics, ids, availability and expiry."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.notices import EVENTS
from mqtt_tokend.contract.topics import Topics
from tests.unit.homeassistant.helpers import (
    BASE,
    EXPIRE,
    PLATFORMS,
    PREFIX,
    SUPPORT,
    TOPIC_MATCHER,
    VERSION,
    component,
    discovery,
    errors,
    strings,
)

# ---- the payloads against Home Assistant's documented schema ------------------------------


def test_every_entity_platform_is_published(messages: list[tuple[str, str]]) -> None:
    assert sorted({component(topic) for topic, _ in messages}) == sorted(PLATFORMS)
    assert len(messages) == 13


@pytest.mark.parametrize(
    ("topic", "payload"), discovery(), ids=[t.split("/")[3] for t, _ in discovery()]
)
def test_payload_matches_its_platform_schema(
    topic: str, payload: str, validators: dict[str, Draft202012Validator]
) -> None:
    assert errors(validators[component(topic)], json.loads(payload)) == []


@pytest.mark.parametrize(
    ("platform", "key", "change"),
    [
        ("button", "force_refresh", {"command_topic": None}),
        ("text", "login_redirect", {"command_topic": None}),
        ("text", "login_redirect", {"max": 256}),
        ("event", "alert", {"event_types": None}),
        ("event", "alert", {"state_topic": None}),
        ("sensor", "token_state", {"options": None}),
        ("sensor", "token_expiry", {"options": ["a"]}),
        ("sensor", "token_expiry", {"unit_of_measurement": "s"}),
        ("sensor", "reauth_by", {"entity_category": "config"}),
        ("sensor", "token_state", {"state_topic": None}),
        ("sensor", "token_state", {"availability": [{"topic": "x"}]}),
        ("sensor", "token_state", {"expire_after": -1}),
        ("sensor", "token_state", {"colour": "red"}),
        ("binary_sensor", "problem", {"device_class": "trouble"}),
        ("binary_sensor", "agent", {"state_topic": None}),
        ("sensor", "token_state", {"default_entity_id": "token_state"}),
        ("sensor", "token_state", {"device": {"identifiers": ["x"], "configuration_url": "x"}}),
        ("sensor", "token_state", {"device": {"name": "no identifiers"}}),
        ("sensor", "token_state", {"origin": {"sw_version": "1"}}),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(v),
)
def test_schemas_reject_what_home_assistant_rejects(
    platform: str,
    key: str,
    change: dict[str, Any],
    payloads: dict[str, dict[str, Any]],
    validators: dict[str, Draft202012Validator],
) -> None:
    broken = {k: v for k, v in (payloads[key] | change).items() if v is not None}
    assert errors(validators[platform], broken)


def test_topics_are_per_component_under_the_prefix(messages: list[tuple[str, str]]) -> None:
    for topic, _ in messages:
        prefix, rest = topic.split("/", 1)
        match = TOPIC_MATCHER.fullmatch(rest)
        assert prefix == PREFIX
        assert match, topic
        assert match["node_id"] == "lofi_spotify"


def test_one_device_with_its_origin(payloads: dict[str, dict[str, Any]]) -> None:
    devices = {json.dumps(p["device"], sort_keys=True) for p in payloads.values()}
    assert len(devices) == 1
    device = next(iter(payloads.values()))["device"]
    assert device == {
        "identifiers": ["mqtt_tokend_lofi_spotify"],
        "name": "LoFi Pi Spotify",
        "manufacturer": "mqtt-tokend",
        "model": ha.MODEL,
        "sw_version": VERSION,
        "configuration_url": ha.README_URL,
    }
    for payload in payloads.values():
        assert payload["origin"] == {
            "name": "mqtt-tokend",
            "sw_version": VERSION,
            "support_url": SUPPORT,
        }


def test_origin_without_a_support_url() -> None:
    for _, payload in discovery(support_url=None):
        assert json.loads(payload)["origin"] == {"name": "mqtt-tokend", "sw_version": VERSION}


def test_unique_ids_are_unique_and_stable(messages: list[tuple[str, str]]) -> None:
    ids = [json.loads(p)["unique_id"] for _, p in messages]
    assert len(set(ids)) == len(ids)
    later = discovery(version="9.0.0", expire_after=99, support_url=None)
    assert [json.loads(p)["unique_id"] for _, p in later] == ids
    assert "mqtt_tokend_lofi_spotify_token_state" in ids
    other = discovery(base_topic="home/kids-spotify")
    assert not {json.loads(p)["unique_id"] for _, p in other} & set(ids)


def test_payloads_are_byte_identical_when_republished(messages: list[tuple[str, str]]) -> None:
    assert discovery() == messages  # Home Assistant ignores an unchanged config


def test_entity_ids_follow_the_default_entity_ids(payloads: dict[str, dict[str, Any]]) -> None:
    ids = ha.entity_ids(BASE)
    for key, payload in payloads.items():
        platform = next(c for c in PLATFORMS if ids[key].startswith(f"{c}."))
        # 2025.10 and later read default_entity_id; older releases the same id as object_id.
        assert ids[key] == payload["default_entity_id"] == f"{platform}.{payload['object_id']}"
    assert ids["token_state"] == "sensor.lofi_pi_spotify_token_state"
    assert ids["problem"] == "binary_sensor.lofi_pi_spotify_problem"
    assert ids["force_refresh"] == "button.lofi_pi_spotify_force_refresh"
    assert ids["login_redirect"] == "text.lofi_pi_spotify_login_redirect"
    assert ids["alert"] == "event.lofi_pi_spotify_alert"
    assert ids["agent"] == "binary_sensor.lofi_pi_spotify_agent"
    assert ids["check_now"] == "button.lofi_pi_spotify_check_now"


def test_a_second_account_gets_its_own_device_and_entity_ids() -> None:
    other = {t.split("/")[3]: json.loads(p) for t, p in discovery(base_topic="lofi/spotify2")}
    assert other["token_state"]["device"]["name"] == "LoFi Pi Spotify (lofi/spotify2)"
    assert other["token_state"]["default_entity_id"] == (
        "sensor.lofi_pi_spotify_lofi_spotify2_token_state"
    )
    assert ha.entity_ids("lofi/spotify2")["problem"] == (
        "binary_sensor.lofi_pi_spotify_lofi_spotify2_problem"
    )
    assert other["problem"]["state_topic"] == "lofi/spotify2/health"


def test_no_entity_references_the_token_topics(payloads: dict[str, dict[str, Any]]) -> None:
    topics = Topics(BASE)
    for payload in payloads.values():
        for text in strings(payload):
            assert topics.token not in text, text  # also covers token/app
    topic_values = {v for p in payloads.values() for k, v in p.items() if k.endswith("topic")}
    assert topic_values == {
        topics.health,
        topics.login,
        topics.alert,
        topics.availability,
        topics.request("refresh"),
        topics.request("check"),
        topics.request("auth"),
    }


def test_availability_and_expiry(payloads: dict[str, dict[str, Any]]) -> None:
    for key, payload in payloads.items():
        if key in ("alert", "agent"):
            # The health check publishes agent_dead while the agent is offline, and the agent
            # sensor shows `off` then: both stay available.
            assert "availability_topic" not in payload
            assert "availability" not in payload
            assert "expire_after" not in payload
            continue
        assert payload["availability_topic"] == f"{BASE}/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == (
            "online",
            "offline",
        )
        health_driven = payload.get("state_topic") == f"{BASE}/health"
        if key != "login_redirect":  # a text entity has no expire_after
            assert (payload.get("expire_after") == EXPIRE) == health_driven, key


def test_what_each_entity_is(payloads: dict[str, dict[str, Any]]) -> None:
    state = payloads["token_state"]
    assert (state["device_class"], state["options"]) == ("enum", list(ha.STATE_OPTIONS))
    assert sorted(ha.STATE_OPTIONS) == sorted(ha.STATE_NAMES[s] for s in State)
    assert len(set(ha.STATE_OPTIONS)) == len(State)
    agent = payloads["agent"]
    assert (agent["device_class"], agent["state_topic"]) == ("connectivity", f"{BASE}/availability")
    assert (agent["payload_on"], agent["payload_off"]) == ("online", "offline")
    check = payloads["check_now"]
    assert check["command_topic"] == f"{BASE}/request/check"
    assert json.loads(check["payload_press"]) == {"reason": "home_assistant"}
    assert check["retain"] is False
    for key in ("token_expiry", "last_refresh", "next_refresh", "reauth_by"):
        assert payloads[key]["device_class"] == "timestamp"
    for key in ("consecutive_failures", "reauth_by", "next_refresh"):
        assert payloads[key]["entity_category"] == "diagnostic"
    assert payloads["problem"]["device_class"] == "problem"
    button = payloads["force_refresh"]
    assert button["command_topic"] == f"{BASE}/request/refresh"
    assert json.loads(button["payload_press"]) == {"reason": "home_assistant"}
    text = payloads["login_redirect"]
    assert (text["command_topic"], text["mode"], text["max"]) == (
        f"{BASE}/request/auth",
        "text",
        255,
    )
    assert not text.get("optimistic", False) and text["state_topic"]  # keeps no pasted code
    event = payloads["alert"]
    assert event["state_topic"] == f"{BASE}/alert"
    assert set(EVENTS) | {"other"} == set(event["event_types"])
    login = payloads["login"]
    assert login["json_attributes_topic"] == f"{BASE}/login"
    assert login["state_topic"] == f"{BASE}/health"


def test_expire_after_is_two_checks_and_a_margin() -> None:
    assert ha.expire_after_for(300) == 660
    assert ha.expire_after_for(0.5, margin=0) == 1
    with pytest.raises(ValueError, match="expire_after"):
        discovery(expire_after=0)


def test_removal_messages_empty_every_config_topic(messages: list[tuple[str, str]]) -> None:
    removal = ha.removal_messages(base_topic=BASE, discovery_prefix=PREFIX)
    assert [t for t, _ in removal] == [t for t, _ in messages]
    assert {p for _, p in removal} == {""}


def test_other_prefix_and_node_id() -> None:
    topics = [t for t, _ in discovery(discovery_prefix="ha", node_id="pi2")]
    assert all(t.startswith("ha/") and t.split("/")[2] == "pi2" for t in topics)
    removal = ha.removal_messages(base_topic=BASE, discovery_prefix="ha", node_id="pi2")
    assert [t for t, _ in removal] == topics


@pytest.mark.parametrize(
    ("base", "node"),
    [
        ("lofi/spotify", "lofi_spotify"),
        ("home/lofi pi/spotify-2", "home_lofi_pi_spotify-2"),
        ("/", "mqtt_tokend"),
    ],
)
def test_node_id_is_what_home_assistant_accepts(base: str, node: str) -> None:
    assert ha.node_id_for(base) == node
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", node)


@pytest.mark.parametrize(
    ("topic", "payload", "birth"),
    [
        ("homeassistant/status", b"online", True),
        ("homeassistant/status", "online\n", True),
        ("homeassistant/status", b"offline", False),
        ("homeassistant/status", b"", False),
        ("homeassistant/status", b"\xff", False),
        ("other/status", b"online", False),
        ("homeassistant/statuses", b"online", False),
    ],
)
def test_birth_message(topic: str, payload: bytes | str, birth: bool) -> None:
    assert ha.status_topic(PREFIX) == "homeassistant/status"
    assert ha.is_birth(topic, payload, discovery_prefix=PREFIX) is birth


def test_the_device_link_is_the_one_given_or_left_out() -> None:
    """homeassistant.configuration_url: a link of the user's, or none at all (empty)."""
    link = "http://homeassistant.local:8123/lovelace/spotify"
    for _, payload in discovery(configuration_url=link):
        assert json.loads(payload)["device"]["configuration_url"] == link
    for _, payload in discovery(configuration_url=""):
        assert "configuration_url" not in json.loads(payload)["device"]
    kept = ha.device_messages(
        enabled=True,
        base_topic=BASE,
        discovery_prefix=PREFIX,
        version=VERSION,
        check_interval=300,
        configuration_url=link,
    )
    assert {json.loads(p)["device"]["configuration_url"] for _, p in kept} == {link}
