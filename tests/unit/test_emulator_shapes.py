"""The emulator's Web API answers have the shapes Spotify's published description gives, and
every call SpotifyClient makes exists there (checked against the OpenAPI file in
../shared/reference/; skipped where that folder is absent)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.dev.emulator.webapi import DEMO_TRACKS, ROUTES, route
from mqtt_tokend.webapi.client import SpotifyClient
from tests.unit.emulator.helpers import pkce_login
from tests.unit.test_webapi_policy import OPENAPI


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip("Spotify's Web API description is not in ../shared/reference/")
    document: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    return document


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The described operation for a concrete "/v1/..." path, or None."""
    for template, operations in spec["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path.removeprefix("/v1")) and method.lower() in operations:
            found: dict[str, Any] = operations[method.lower()]
            return found
    return None


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema (`type: [T, "null"]`)."""
    if isinstance(schema, list):
        return [_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _nullable(value) for key, value in schema.items()}
    if converted.pop("nullable", False) and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


def _schema(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    ref = response.get("$ref")
    if ref:
        response = spec["components"]["responses"][ref.rsplit("/", 1)[-1]]
    schema = response["content"]["application/json"]["schema"]
    return _nullable({**schema, "components": spec["components"]})


@pytest.fixture
def emulator() -> Iterator[SpotifyEmulator]:
    with SpotifyEmulator() as emu:
        yield emu


EXAMPLES = [
    ("GET", "/v1/me", None, None),
    ("GET", "/v1/me/player/devices", None, None),
    ("GET", "/v1/me/player", None, None),
    ("GET", "/v1/search", {"q": "tram", "type": "track"}, None),
    ("GET", f"/v1/tracks/{DEMO_TRACKS[0]['id']}", None, None),
    ("PUT", "/v1/me/player/play", None, {"uris": [DEMO_TRACKS[1]["uri"]]}),
    ("PUT", "/v1/me/player/pause", None, None),
    ("POST", "/v1/me/player/queue", {"uri": DEMO_TRACKS[2]["uri"]}, None),
]


def test_every_emulated_route_is_in_the_examples() -> None:
    routed = {route(method, path) for method, path, _, _ in EXAMPLES}
    assert routed == {name for _, _, name in ROUTES}


@pytest.mark.parametrize(
    ("method", "path", "params", "body"), EXAMPLES, ids=[e[1] for e in EXAMPLES]
)
def test_answers_match_spotifys_description(
    spec: dict[str, Any],
    emulator: SpotifyEmulator,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: Any,
) -> None:
    with requests.Session() as http:
        token = pkce_login(emulator, http)["access_token"]
        answer = http.request(
            method,
            f"{emulator.url}{path}",
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        refused = http.get(f"{emulator.url}{path}", headers={"Authorization": "Bearer x"})
    operation = _operation(spec, method, path)
    assert operation is not None, f"{method} {path} is not in Spotify's description"
    assert str(answer.status_code) in operation["responses"], answer.status_code
    if answer.content:
        jsonschema.validate(answer.json(), _schema(spec, operation["responses"]["200"]))
    get = _operation(spec, "GET", path) or operation
    status = "401" if "401" in get["responses"] else "default"
    if refused.status_code == 401 and status in get["responses"]:
        jsonschema.validate(refused.json(), _schema(spec, get["responses"][status]))


def test_every_path_the_client_calls_is_described(spec: dict[str, Any]) -> None:
    source = inspect.getsource(SpotifyClient)
    paths = set(re.findall(r'"(/v1/[a-z/]+)"', source))
    assert len(paths) >= 6
    for path in paths:
        methods = [m for m in ("GET", "PUT", "POST") if _operation(spec, m, path)]
        assert methods, f"{path} is not in Spotify's description"
