"""Home Assistant discovery: payloads per platform schema, ids, templates, the shipped YAML."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.notices import EVENTS
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.core.oauth import code_from_redirect
from mqtt_tokend.errors import AuthRejected
from tests.homeassistant.test_real_ha import log_problems

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "homeassistant" / "schemas"
DEPLOY = ROOT / "deploy" / "homeassistant"
BASE = "lofi/spotify"
PREFIX = "homeassistant"
VERSION = "1.2.3"
EXPIRE = 660
SUPPORT = "https://example.org/mqtt-tokend"
NOW = 1_800_000_000.0
PLATFORMS = ("sensor", "binary_sensor", "button", "text", "event")
# Home Assistant's own pattern for discovery topics (components/mqtt/discovery.py).
TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)
ENTITY_ID = re.compile(r"\b(?:sensor|binary_sensor|button|text|event)\.[a-z0-9_]+")


def discovery(**overrides: Any) -> list[tuple[str, str]]:
    arguments: dict[str, Any] = {
        "base_topic": BASE,
        "discovery_prefix": PREFIX,
        "version": VERSION,
        "expire_after": EXPIRE,
        "support_url": SUPPORT,
    } | overrides
    return ha.discovery_messages(**arguments)


def component(topic: str) -> str:
    return topic.split("/")[1]


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, str]]:
    return discovery()


@pytest.fixture(scope="module")
def payloads(messages: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Each payload by its topic's object id (the entity's key)."""
    return {topic.split("/")[3]: json.loads(payload) for topic, payload in messages}


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    out = {}
    for platform in PLATFORMS:
        schema = schemas[f"{platform}.schema.json"]
        Draft202012Validator.check_schema(schema)
        out[platform] = Draft202012Validator(
            schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    return out


def errors(validator: Draft202012Validator, payload: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


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


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_entity_references_the_token_topics(payloads: dict[str, dict[str, Any]]) -> None:
    topics = Topics(BASE)
    for payload in payloads.values():
        for text in _strings(payload):
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


# ---- the templates, rendered with stand-ins for Home Assistant's Jinja ---------------------


def _as_datetime(value: Any) -> datetime:
    """Home Assistant 2024.1's `as_datetime`: float() first, so None raises TypeError."""
    return datetime.fromtimestamp(float(value), UTC)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
ENV.globals["as_datetime"] = _as_datetime
ENV.filters["as_datetime"] = _as_datetime
ENV.filters["to_json"] = json.dumps
ENV.filters["int"] = _int


def render(template: str, payload: Any) -> str:
    """Like Home Assistant: `value` is the raw payload, `value_json` its JSON; then strip."""
    return ENV.from_string(template).render(value=json.dumps(payload), value_json=payload).strip()


def render_text(template: str, text: str) -> str:
    """A payload that is not JSON: Home Assistant leaves `value_json` undefined."""
    return ENV.from_string(template).render(value=text).strip()


def health(**changes: Any) -> dict[str, Any]:
    return {
        "state": "ok",
        "message": "token refreshed",
        "expires_at": NOW + 3000.25,
        "last_refresh": NOW - 600,
        "next_refresh": NOW + 2400,
        "consecutive_failures": 0,
        "instructions": None,
        "checked_at": NOW,
        "user": "owner",
        "version": VERSION,
        "reauth_by": NOW + 170 * 86400,
    } | changes


@pytest.mark.parametrize("key", ["token_expiry", "last_refresh", "next_refresh", "reauth_by"])
def test_timestamps_render_iso_8601_with_a_zone(
    key: str, payloads: dict[str, dict[str, Any]]
) -> None:
    field = {"token_expiry": "expires_at"}.get(key, key)
    template = payloads[key]["value_template"]
    record = health()
    rendered = render(template, record)
    parsed = datetime.fromisoformat(rendered)
    assert parsed.tzinfo is not None
    assert parsed.timestamp() == pytest.approx(record[field], abs=1e-3)
    assert render(template, health(**{field: None})) == "None"  # Home Assistant: unknown
    assert render(template, {"state": "starting"}) == "None"  # a record without the field
    assert render(template, health(**{field: 1_700_000_000})) == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize("state", [s.value for s in State])
def test_state_problem_and_login(state: str, payloads: dict[str, dict[str, Any]]) -> None:
    record = health(state=state)
    shown = render(payloads["token_state"]["value_template"], record)
    assert shown == ha.STATE_NAMES[State(state)]
    assert shown in payloads["token_state"]["options"]
    problem = render(payloads["problem"]["value_template"], record)
    expected = "ON" if state in ("auth_required", "error", "degraded") else "OFF"
    assert problem == expected
    assert problem in (payloads["problem"]["payload_on"], payloads["problem"]["payload_off"])
    login = render(payloads["login"]["value_template"], record)
    assert login == ("Login required" if state == "auth_required" else "OK")


def test_a_state_this_release_does_not_know_is_unknown(
    payloads: dict[str, dict[str, Any]],
) -> None:
    assert render(payloads["token_state"]["value_template"], health(state="sleeping")) == "None"


def test_the_token_state_carries_message_and_instructions(
    payloads: dict[str, dict[str, Any]],
) -> None:
    template = payloads["token_state"]["json_attributes_template"]
    record = health(state="auth_required", instructions="Open the link.")
    assert json.loads(render(template, record)) == {
        "state": "auth_required",
        "message": "token refreshed",
        "instructions": "Open the link.",
    }
    assert json.loads(render(template, {})) == {
        "state": None,
        "message": None,
        "instructions": None,
    }


def test_login_link_comes_from_the_login_topic(payloads: dict[str, dict[str, Any]]) -> None:
    url = "https://accounts.spotify.com/authorize?client_id=abc&state=xyz"
    login = payloads["login"]
    assert json.loads(render_text(login["json_attributes_template"], url + "\n")) == {
        "auth_url": url
    }
    # Cleared (an empty retained message): no link.
    assert json.loads(render_text(login["json_attributes_template"], "")) == {"auth_url": None}
    # The health record no longer names the link; the state still says a login is needed.
    assert render(login["value_template"], health(state="auth_required")) == ha.LOGIN_NEEDED


def test_failures_and_the_text_entity(payloads: dict[str, dict[str, Any]]) -> None:
    template = payloads["consecutive_failures"]["value_template"]
    assert render(template, health(consecutive_failures=4)) == "4"
    assert render(template, health(consecutive_failures=None)) == "0"
    assert render(template, {"state": "ok"}) == "0"
    assert render(payloads["login_redirect"]["value_template"], health()) == ""


@pytest.mark.parametrize("event", [*EVENTS, "something_new", None])
def test_alerts_become_events(event: str | None, payloads: dict[str, dict[str, Any]]) -> None:
    alert = {"event": event, "message": "m", "instructions": None, "at": NOW}
    rendered = json.loads(render(payloads["alert"]["value_template"], alert))
    expected = event if event in EVENTS else "other"
    assert rendered == {
        "event_type": expected,
        "event": event,
        "message": "m",
        "instructions": None,
        "at": NOW,
    }
    assert rendered["event_type"] in payloads["alert"]["event_types"]


# ---- the shipped dashboard card, automation and script -------------------------------------


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("name", ["dashboard-card.yaml", "automation-alerts.yaml"])
def test_shipped_yaml_references_only_discovered_entities(name: str) -> None:
    referenced = {m for text in _strings(_yaml(name)) for m in ENTITY_ID.findall(text)}
    assert referenced
    assert referenced <= set(ha.entity_ids(ha.DEFAULT_BASE_TOPIC).values())


def test_dashboard_card_shows_the_state_and_the_way_out() -> None:
    ids = ha.entity_ids(ha.DEFAULT_BASE_TOPIC)
    card = _yaml("dashboard-card.yaml")
    entities, problem, paste = card["cards"]
    assert [row["entity"] for row in entities["entities"]] == [
        ids[k]
        for k in (
            "token_state",
            "agent",
            "token_expiry",
            "last_refresh",
            "consecutive_failures",
            "reauth_by",
            "check_now",
            "force_refresh",
        )
    ]
    assert problem["conditions"] == [{"entity": ids["problem"], "state_not": "off"}]
    assert problem["card"]["type"] == "markdown"
    assert paste["conditions"] == [{"entity": ids["login"], "state": ha.LOGIN_NEEDED}]
    assert paste["card"]["entities"][0]["entity"] == ids["login_redirect"]


def _states(**states: tuple[str, dict[str, Any]]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    table = {entity.replace("__", "."): value for entity, value in states.items()}
    env.globals["states"] = lambda e: table.get(e, ("unknown", {}))[0]
    env.globals["state_attr"] = lambda e, a: table.get(e, ("unknown", {}))[1].get(a)
    return env


def test_markdown_card_links_the_login_and_says_where_to_paste() -> None:
    ids = ha.entity_ids(ha.DEFAULT_BASE_TOPIC)
    content = _yaml("dashboard-card.yaml")["cards"][1]["card"]["content"]
    url = "https://accounts.spotify.com/authorize?client_id=abc&state=xyz"
    attributes = {"instructions": "Run mqtt-tokend auth.", "message": "refused"}
    env = _states(
        **{
            ids["problem"].replace(".", "__"): ("on", {}),
            ids["agent"].replace(".", "__"): ("on", {}),
            ids["token_state"].replace(".", "__"): (ha.LOGIN_NEEDED, attributes),
            ids["login"].replace(".", "__"): (ha.LOGIN_NEEDED, {"auth_url": url}),
        }
    )
    text = env.from_string(content).render()
    assert f"[Open the Spotify login]({url})" in text
    assert "Run mqtt-tokend auth." in text
    assert "**Login required:**" in text
    assert "one-tap" in text
    assert "Login redirect URL" in text
    for dead_states in (
        {ids["problem"].replace(".", "__"): ("unavailable", {})},
        {
            ids["problem"].replace(".", "__"): ("on", {}),
            ids["agent"].replace(".", "__"): ("off", {}),
        },
    ):
        text = _states(**dead_states).from_string(content).render()
        assert "not answering" in text
        assert "systemctl status lofi-pi-token-manager" in text
        assert "Open the Spotify login" not in text


def test_alert_automation_notifies_with_message_and_instructions() -> None:
    (automation,) = _yaml("automation-alerts.yaml")
    # Home Assistant 2024.10's syntax: triggers/conditions/actions, `trigger:` and `action:`.
    assert not {"trigger", "condition", "action"} & set(automation)
    assert automation["triggers"] == [
        {"trigger": "state", "entity_id": ha.entity_ids(ha.DEFAULT_BASE_TOPIC)["alert"]}
    ]
    (action,) = automation["actions"]
    assert action["action"] == "notify.notify"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    attributes = {
        "event_type": "auth_required",
        "event": "auth_required",
        "message": "Spotify needs a new login.",
        "instructions": "Open the dashboard.",
    }
    trigger = {"to_state": {"state": "2027-01-01T00:00:00+00:00", "attributes": attributes}}
    title = env.from_string(action["data"]["title"]).render(trigger=trigger)
    message = env.from_string(action["data"]["message"]).render(trigger=trigger)
    assert title == "LoFi Pi Spotify: auth required"
    assert message == "Spotify needs a new login. What to do: Open the dashboard."
    trigger["to_state"]["attributes"] = attributes | {"instructions": None}
    message = env.from_string(action["data"]["message"]).render(trigger=trigger)
    assert message == "Spotify needs a new login."
    condition = env.from_string(automation["conditions"][0]["value_template"])
    assert condition.render(trigger=trigger | {"from_state": {"state": "x"}}) == "True"
    assert condition.render(trigger=trigger | {"from_state": {"state": "unavailable"}}) == "False"
    assert condition.render(trigger=trigger | {"from_state": None}) == "False"
    assert condition.render(trigger={"from_state": {"state": "x"}, "to_state": None}) == "False"


def test_login_script_publishes_to_the_auth_request_topic() -> None:
    script = _yaml("script-login.yaml")["lofi_pi_spotify_login"]
    (step,) = script["sequence"]
    assert step["action"] == "mqtt.publish"
    assert step["data"]["topic"] == Topics(ha.DEFAULT_BASE_TOPIC).request("auth")
    assert step["data"]["retain"] is False
    assert script["fields"]["redirect_url"]["required"] is True


# ---- the one-tap login: Spotify's redirect reaches Home Assistant's webhook -----------------


def _webhook_env() -> jinja2.Environment:
    """Home Assistant's Jinja as far as the webhook automation uses it (`is match`)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    env.tests["match"] = lambda value, pattern: bool(re.match(pattern, str(value)))
    return env


def _webhook_automation() -> dict[str, Any]:
    (automation,) = _yaml("automation-login-webhook.yaml")
    return dict(automation)


def test_webhook_automation_accepts_a_get_from_anywhere() -> None:
    automation = _webhook_automation()
    (trigger,) = automation["triggers"]
    assert trigger["trigger"] == "webhook"
    assert trigger["allowed_methods"] == ["GET"]
    assert trigger["local_only"] is False
    assert trigger["webhook_id"] == "REPLACE-WITH-A-LONG-RANDOM-ID"
    (action,) = automation["actions"]
    assert action["action"] == "mqtt.publish"
    assert action["data"]["topic"] == Topics(ha.DEFAULT_BASE_TOPIC).request("auth")
    assert action["data"]["retain"] is False


@pytest.mark.parametrize(
    ("query", "passed", "payload"),
    [
        ({"code": "AQB-x_y.z~1", "state": "s" * 43}, True, f"code=AQB-x_y.z~1&state={'s' * 43}"),
        # Spotify adds parameters of its own (e.g. `ubi`); only code and state go on.
        ({"code": "abc", "state": "xyz", "ubi": "zzz"}, True, "code=abc&state=xyz"),
        ({"error": "access_denied", "state": "xyz"}, True, "error=access_denied&state=xyz"),
        ({"code": "abc"}, False, None),
        ({"state": "xyz"}, False, None),
        ({"code": "a&state=evil", "state": "xyz"}, False, None),
        ({"code": "abc", "state": "x y"}, False, None),
        ({"code": "a" * 2000, "state": "xyz"}, False, None),
    ],
)
def test_webhook_passes_on_only_a_redirects_code_and_state(
    query: dict[str, str], passed: bool, payload: str | None
) -> None:
    automation = _webhook_automation()
    env = _webhook_env()
    trigger = {"query": query}
    (condition,) = automation["conditions"]
    assert env.from_string(condition["value_template"]).render(trigger=trigger).strip() == (
        str(passed)
    )
    if passed:
        (action,) = automation["actions"]
        rendered = env.from_string(action["data"]["payload"]).render(trigger=trigger).strip()
        assert rendered == payload
        # The agent's pasted-login parser reads it (no `?`: the whole text is the query).
        if "code" in query:
            assert code_from_redirect(rendered, expected_state=query["state"]) == query["code"]
        else:
            with pytest.raises(AuthRejected):
                code_from_redirect(rendered, expected_state=query["state"])


# ---- what the real-Home-Assistant test counts as a problem in Home Assistant's log ----------

DEPRECATED_2026_2 = (  # what Home Assistant 2026.2.3 logged 11 times for the old discovery
    "2026-11-30 19:19:06.489 WARNING (MainThread) [homeassistant.components.mqtt.entity] The "
    "configuration for entity sensor.lofi_pi_spotify_token_state uses the deprecated option "
    '`object_id` to set the default entity id. Replace the `"object_id": '
    '"lofi_pi_spotify_token_state"` option with `"default_entity_id": '
    '"sensor.lofi_pi_spotify_token_state"` in your published discovery configuration to fix '
    "this issue, or contact the maintainer of mqtt-tokend that published this config to fix "
    "this. This will stop working in Home Assistant Core 2026.4"
)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (DEPRECATED_2026_2, True),
        (
            "2026-01-01 00:00:00.000 ERROR (MainThread) [homeassistant.components.mqtt.discovery] "
            "Invalid config for 'sensor' from integration 'mqtt'",
            True,
        ),
        (
            "2026-01-01 00:00:00.000 INFO (MainThread) [homeassistant.components.mqtt] deprecated "
            "key in some other device's discovery",
            True,
        ),
        (
            "2026-01-01 00:00:00.000 WARNING (MainThread) [homeassistant.bootstrap] Skipping pip "
            "installation of required modules. This may cause issues",
            False,
        ),
        (
            "2026-01-01 00:00:00.000 INFO (MainThread) [homeassistant.components.mqtt.discovery] "
            "Found new component: sensor lofi_spotify token_state",
            False,
        ),
    ],
)
def test_the_real_home_assistant_test_fails_on_deprecations(line: str, problem: bool) -> None:
    assert bool(log_problems(line, version=(2026, 2))) is problem


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
