"""The discovery messages, their payloads by entity, and Home Assistant's schema per platform."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.unit.homeassistant.helpers import PLATFORMS, SCHEMAS, discovery


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
