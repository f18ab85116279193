"""docker-compose.yml, the Dockerfile and .dockerignore: valid against the Compose
specification's schema, every referenced file present, and the agent image built in two stages
to run as a non-root user. (No Docker engine needed: nothing is built or started here.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import REPO, SHARED

COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA = SHARED / "reference" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def interpolated(value: str) -> str:
    """Compose's ${VAR:-default} with VAR unset: the default (what a fresh checkout uses)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def bind_sources(compose: dict[str, Any]) -> dict[str, str]:
    """'service: target' -> host path of every bind mount (short and long syntax)."""
    sources = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = interpolated(volume).partition(":")
                target = rest.split(":")[0]
            else:
                source, target = volume.get("source", ""), volume["target"]
            if source.startswith((".", "/")):
                sources[f"{name}: {target}"] = source
    return sources


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"{SCHEMA} is absent (the shared reference folder sits beside the repo)")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_every_referenced_path_exists_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    sources = bind_sources(compose)
    assert sources, "the shipped configuration is mounted, not copied"
    for mount, source in sources.items():
        assert (REPO / source).resolve().exists(), f"{mount} mounts {source}, which is missing"


def test_broker_runs_the_shipped_config_and_the_agent_keeps_state_and_key_in_volumes(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    broker = services["mosquitto"]
    assert broker["image"] == "eclipse-mosquitto:2"
    mounts = bind_sources(compose)
    assert mounts["mosquitto: /mosquitto/config/mosquitto.conf"] == (
        "./deploy/mosquitto/mosquitto.conf"
    )
    assert mounts["mosquitto-users: /deploy"] == "./deploy/mosquitto"
    assert "make_passwords.sh" in services["mosquitto-users"]["command"][0]

    agent = services["mqtt-tokend"]
    assert agent["build"]["context"] == "."
    named = {v.split(":")[1]: v.split(":")[0] for v in agent["volumes"] if v[0] not in "$./"}
    assert set(named) == {"/etc/mqtt-tokend", "/var/lib/mqtt-tokend"}
    assert set(named.values()) <= set(compose["volumes"])
    assert "profiles" not in agent and "profiles" not in broker

    emulator = services["emulator"]
    assert emulator["profiles"] == ["demo"]
    everywhere = "0.0.0.0"  # noqa: S104 - the demo emulator is meant to be reachable
    assert emulator["command"] == ["emulator", "--host", everywhere, "--port", "8900"]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_dockerfile_builds_a_wheel_then_runs_it_as_a_non_root_user() -> None:
    builder, runtime = dockerfile_stages()
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    assert any(i == "RUN" and "pip wheel" in a for i, a in builder)
    assert runtime[0][1].startswith("python:3.11-slim")
    users = [a for i, a in runtime if i == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ("ENTRYPOINT", '["mqtt-tokend"]') in runtime
    assert ("CMD", '["run"]') in runtime
    assert not any(i == "COPY" and "--from=builder" in a for i, a in runtime), (
        "wheels are bind-mounted, never a layer of the runtime image"
    )


def test_dockerignore_lets_in_what_the_wheel_is_built_from() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list: nothing else (.git, .venv, state) gets in"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    included = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed |= {pattern.rstrip("*").split(".")[0] for pattern in included}
    assert needed <= allowed
    for name in needed:
        assert Path(REPO / name).exists()
