"""What the Home Assistant discovery tests share: the discovery messages as the agent makes them,
and stand-ins for Home Assistant's Jinja to render their templates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jsonschema import Draft202012Validator

from mqtt_tokend.contract import homeassistant as ha

ROOT = Path(__file__).resolve().parents[3]
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


def errors(validator: Draft202012Validator, payload: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def as_datetime(value: Any) -> datetime:
    """Home Assistant 2024.1's `as_datetime`: float() first, so None raises TypeError."""
    return datetime.fromtimestamp(float(value), UTC)


def int_or_default(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
ENV.globals["as_datetime"] = as_datetime
ENV.filters["as_datetime"] = as_datetime
ENV.filters["to_json"] = json.dumps
ENV.filters["int"] = int_or_default


def render(template: str, payload: Any) -> str:
    """Like Home Assistant: `value` is the raw payload, `value_json` its JSON; then strip."""
    return ENV.from_string(template).render(value=json.dumps(payload), value_json=payload).strip()


def render_text(template: str, text: str) -> str:
    """A payload that is not JSON: Home Assistant leaves `value_json` undefined."""
    return ENV.from_string(template).render(value=text).strip()
