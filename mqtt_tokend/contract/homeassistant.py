"""Home Assistant MQTT discovery: one device, its entities, as retained config messages.

Pure functions, no I/O. The agent publishes `discovery_messages(...)` retained at QoS 1 on
connect and again whenever Home Assistant announces itself (`is_birth`); `removal_messages`
takes the device away again. Entities read `<base>/health`, `<base>/login`, `<base>/alert`
and `<base>/availability` and write `<base>/request/refresh`, `<base>/request/check` and
`<base>/request/auth`; none ever references the token topics.

Choices checked against a real Home Assistant 2026.2 (and 2024.1):

* per-component topics `<prefix>/<component>/<node_id>/<key>/config`, understood by every
  release; predictable entity ids (`sensor.lofi_pi_spotify_token_state`) through
  `default_entity_id` (2025.10 and later) and `object_id` (what older releases read). When
  both are sent, 2025.10+ takes `default_entity_id` and logs no deprecation (it warns only
  about an `object_id` sent alone); 2026.4 stops reading `object_id`, older releases drop the
  unknown `default_entity_id` (discovery removes extra keys). zigbee2mqtt sends both too;
* health-driven entities set `expire_after`, so a stuck agent turns them unavailable even
  when no Last Will fires; the alert event entity has no availability, so the redundant
  health check's `agent_dead` still arrives while the agent is offline;
* the `Agent` connectivity sensor reads the availability topic itself (no availability of
  its own): `on` while the agent says `online`, `off` as soon as its Last Will (or its clean
  shutdown) says `offline`, never `unavailable` for that. An automation waits for it to be
  `off`; a stuck agent that keeps its connection is left to `expire_after` and to the
  health check's `agent_dead` alert (one MQTT entity has one state topic: it cannot also
  time out the health record without turning `unavailable`);
* the token state shows readable names (`OK`, `Login required`, ...), the enum's options;
* timestamps: the health record holds Unix seconds; the templates turn them into ISO 8601
  with a time zone, and a null into `None` (unknown);
* the login text entity takes at most 255 characters, Home Assistant's limit for any state
  (a larger `max` makes it reject the whole entity); its state mirrors nothing but an empty
  string, so a pasted authorization code never lands in Home Assistant's database.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mqtt_tokend.config import README_URL
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.notices import EVENTS
from mqtt_tokend.contract.topics import OFFLINE, ONLINE, Topics

DEFAULT_BASE_TOPIC = "lofi/spotify"
DEVICE_NAME = "LoFi Pi Spotify"
ORIGIN_NAME = "mqtt-tokend"
MANUFACTURER = "mqtt-tokend"
MODEL = "Spotify token agent"

BIRTH_PAYLOAD = "online"  # what Home Assistant publishes on `<prefix>/status` when it starts
EXPIRE_AFTER_SLACK = 60.0  # seconds on top of two health checks before entities turn unavailable
TEXT_MAX = 255  # Home Assistant's MAX_LENGTH_STATE_STATE: the largest `max` a text accepts
PROBLEM_STATES = (State.AUTH_REQUIRED, State.ERROR, State.DEGRADED)
OTHER_EVENT = "other"  # alert events this release does not know yet still reach automations
# What Home Assistant shows for each health state; the token state sensor's enum options.
STATE_NAMES = {
    State.STARTING: "Starting",
    State.OK: "OK",
    State.RETRYING: "Retrying",
    State.DEGRADED: "Degraded",
    State.AUTH_REQUIRED: "Login required",
    State.ERROR: "Error",
}
LOGIN_NEEDED = STATE_NAMES[State.AUTH_REQUIRED]
LOGIN_OK = STATE_NAMES[State.OK]
REFRESH_PAYLOAD = json.dumps({"reason": "home_assistant"})
CHECK_PAYLOAD = REFRESH_PAYLOAD
STATE_OPTIONS = tuple(STATE_NAMES[s] for s in State)  # the token state sensor's enum options
EVENT_TYPES = (*EVENTS, OTHER_EVENT)  # the alert event entity's event types

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def node_id_for(base_topic: str) -> str:
    """The discovery node id for a base topic: `lofi/spotify` -> `lofi_spotify`."""
    return _UNSAFE.sub("_", base_topic).strip("_") or "mqtt_tokend"


def device_name_for(base_topic: str) -> str:
    """The device's name; a second account (another base topic) gets its topic appended."""
    if base_topic == DEFAULT_BASE_TOPIC:
        return DEVICE_NAME
    return f"{DEVICE_NAME} ({base_topic})"


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("_", text.lower()).strip("_")


def expire_after_for(check_interval: float, margin: float = EXPIRE_AFTER_SLACK) -> int:
    """Seconds without a health record before its entities turn unavailable."""
    return math.ceil(2 * check_interval + margin)


def status_topic(discovery_prefix: str) -> str:
    """Where Home Assistant announces `online` (birth) and `offline` (its Last Will)."""
    return f"{discovery_prefix}/status"


def is_birth(topic: str, payload: bytes | str, *, discovery_prefix: str) -> bool:
    """True when this message is Home Assistant coming online: re-publish discovery then."""
    if topic != status_topic(discovery_prefix):
        return False
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text.strip() == BIRTH_PAYLOAD


# ---- templates (Home Assistant's Jinja: value_json, as_datetime, to_json) -----------------


def _timestamp(key: str) -> str:
    """Unix seconds (or null) in the health record -> ISO 8601 with offset, or `None`."""
    return (
        f"{{% set t = value_json.get('{key}') %}}"
        "{{ as_datetime(t).isoformat() if t is number else 'None' }}"
    )


def _quoted(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


STATE_TEMPLATE = (
    "{% set names = "
    + json.dumps({s.value: name for s, name in STATE_NAMES.items()}, sort_keys=True)
    + " %}{{ names.get(value_json.get('state'), 'None') }}"
)
STATE_ATTRIBUTES_TEMPLATE = (
    "{{ {'state': value_json.get('state'), 'message': value_json.get('message'), "
    "'instructions': value_json.get('instructions')} | to_json }}"
)
FAILURES_TEMPLATE = "{{ value_json.get('consecutive_failures') | int(0) }}"
PROBLEM_TEMPLATE = (
    "{{ 'ON' if value_json.get('state') in "
    f"{_quoted(tuple(s.value for s in PROBLEM_STATES))} else 'OFF' }}}}"
)
LOGIN_TEMPLATE = (
    f"{{{{ '{LOGIN_NEEDED}' if value_json.get('state') == '{State.AUTH_REQUIRED.value}' "
    f"else '{LOGIN_OK}' }}}}"
)
# `<base>/login` holds the URL while a login is offered; an empty (cleared) retained
# message means none is.
LOGIN_ATTRIBUTES_TEMPLATE = "{{ {'auth_url': (value | trim) or none} | to_json }}"
EVENT_TEMPLATE = (
    f"{{% set e = value_json.get('event') %}}"
    f"{{{{ {{'event_type': e if e in {_quoted(EVENTS)} else '{OTHER_EVENT}', 'event': e, "
    "'message': value_json.get('message'), 'instructions': value_json.get('instructions'), "
    "'at': value_json.get('at')} | to_json }}"
)
EMPTY_TEMPLATE = "{{ '' }}"


# ---- the entities -------------------------------------------------------------------------


def _entities(topics: Topics, *, expire_after: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, key, config) for every entity; `key` names the topic and the object id."""
    health = {"state_topic": topics.health, "expire_after": expire_after}
    diagnostic = {"entity_category": "diagnostic"}

    def timestamp(name: str, key: str, **extra: Any) -> dict[str, Any]:
        config = {"name": name, "device_class": "timestamp", "value_template": _timestamp(key)}
        return health | config | extra

    return [
        (
            "sensor",
            "token_state",
            health
            | {
                "name": "Token state",
                "device_class": "enum",
                "options": list(STATE_OPTIONS),
                "value_template": STATE_TEMPLATE,
                "json_attributes_topic": topics.health,
                "json_attributes_template": STATE_ATTRIBUTES_TEMPLATE,
                "icon": "mdi:key-chain",
            },
        ),
        ("sensor", "token_expiry", timestamp("Token expiry", "expires_at")),
        ("sensor", "last_refresh", timestamp("Last refresh", "last_refresh")),
        ("sensor", "next_refresh", timestamp("Next refresh", "next_refresh", **diagnostic)),
        (
            "sensor",
            "consecutive_failures",
            health
            | diagnostic
            | {
                "name": "Consecutive failures",
                "state_class": "measurement",
                "value_template": FAILURES_TEMPLATE,
                "icon": "mdi:alert-circle-outline",
            },
        ),
        ("sensor", "reauth_by", timestamp("Re-authorize by", "reauth_by", **diagnostic)),
        (
            "sensor",
            "login",
            health
            | {
                "name": "Login",
                "value_template": LOGIN_TEMPLATE,
                "json_attributes_topic": topics.login,
                "json_attributes_template": LOGIN_ATTRIBUTES_TEMPLATE,
                "icon": "mdi:login",
            },
        ),
        (
            "binary_sensor",
            "problem",
            health
            | {
                "name": "Problem",
                "device_class": "problem",
                "value_template": PROBLEM_TEMPLATE,
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        ),
        (
            "binary_sensor",
            "agent",
            {
                "name": "Agent",
                "device_class": "connectivity",
                "state_topic": topics.availability,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
            },
        ),
        (
            "button",
            "force_refresh",
            {
                "name": "Force refresh",
                "command_topic": topics.request("refresh"),
                "payload_press": REFRESH_PAYLOAD,
                "qos": 1,
                "retain": False,
                "icon": "mdi:refresh",
            },
        ),
        (
            "button",
            "check_now",
            {
                "name": "Check now",
                "command_topic": topics.request("check"),
                "payload_press": CHECK_PAYLOAD,
                "qos": 1,
                "retain": False,
                "icon": "mdi:stethoscope",
            },
        ),
        (
            "text",
            "login_redirect",
            {
                "name": "Login redirect URL",
                "command_topic": topics.request("auth"),
                # A state topic makes it non-optimistic: the pasted URL (with its one-time
                # code) is sent and never kept as the entity's state.
                "state_topic": topics.health,
                "value_template": EMPTY_TEMPLATE,
                "mode": "text",
                "min": 0,
                "max": TEXT_MAX,
                "qos": 1,
                "retain": False,
                "icon": "mdi:link-variant",
            },
        ),
        (
            "event",
            "alert",
            {
                "name": "Alert",
                "state_topic": topics.alert,
                "event_types": list(EVENT_TYPES),
                "value_template": EVENT_TEMPLATE,
                "icon": "mdi:bell-alert",
            },
        ),
    ]


# Entities that stay available while the agent is offline (see the module docstring).
_NO_AVAILABILITY = frozenset({"alert", "agent"})


def _config_topic(discovery_prefix: str, component: str, node_id: str, key: str) -> str:
    return f"{discovery_prefix}/{component}/{node_id}/{key}/config"


def entity_ids(base_topic: str) -> dict[str, str]:
    """The entity id Home Assistant gives each entity, by key (for dashboards and tests)."""
    prefix = _slug(device_name_for(base_topic))
    return {
        key: f"{component}.{prefix}_{key}"
        for component, key, _ in _entities(Topics(base_topic), expire_after=1)
    }


def discovery_messages(
    *,
    base_topic: str,
    discovery_prefix: str,
    version: str,
    expire_after: int,
    node_id: str | None = None,
    support_url: str | None = None,
    configuration_url: str = README_URL,
) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity; publish each retained at QoS 1. The device's
    `configuration_url` (its "Visit" link) is left out when empty."""
    if expire_after <= 0:
        raise ValueError("expire_after must be a positive number of seconds")
    topics = Topics(base_topic)
    node = node_id or node_id_for(base_topic)
    name = device_name_for(base_topic)
    device = {
        "identifiers": [f"mqtt_tokend_{node}"],
        "name": name,
        "manufacturer": MANUFACTURER,
        "model": MODEL,
        "sw_version": version,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url
    origin = {"name": ORIGIN_NAME, "sw_version": version}
    if support_url:
        origin["support_url"] = support_url
    availability = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    messages = []
    for component, key, config in _entities(topics, expire_after=expire_after):
        object_id = f"{_slug(name)}_{key}"
        payload = config | {
            "unique_id": f"mqtt_tokend_{node}_{key}",
            "default_entity_id": f"{component}.{object_id}",
            "object_id": object_id,  # for releases before 2025.10 (see the module docstring)
            "device": device,
            "origin": origin,
        }
        if key not in _NO_AVAILABILITY:
            payload |= availability
        topic = _config_topic(discovery_prefix, component, node, key)
        messages.append((topic, json.dumps(payload, sort_keys=True, separators=(",", ":"))))
    return messages


def removal_messages(
    *, base_topic: str, discovery_prefix: str, node_id: str | None = None
) -> list[tuple[str, str]]:
    """Empty retained payloads on every config topic: Home Assistant removes the device."""
    node = node_id or node_id_for(base_topic)
    return [
        (_config_topic(discovery_prefix, component, node, key), "")
        for component, key, _ in _entities(Topics(base_topic), expire_after=1)
    ]


def device_messages(
    *,
    enabled: bool,
    base_topic: str,
    discovery_prefix: str,
    version: str,
    check_interval: float,
    configuration_url: str = README_URL,
) -> list[tuple[str, str]]:
    """What to publish retained for the device: its discovery when enabled, else its removal."""
    if not enabled:
        return removal_messages(base_topic=base_topic, discovery_prefix=discovery_prefix)
    return discovery_messages(
        base_topic=base_topic,
        discovery_prefix=discovery_prefix,
        version=version,
        expire_after=expire_after_for(check_interval),
        configuration_url=configuration_url,
    )
