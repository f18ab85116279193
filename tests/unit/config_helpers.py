"""Helpers the configuration tests share: parse a document, collect its errors, write a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mqtt_tokend.config import Config, parse_config
from mqtt_tokend.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"
SECRET = "sup3r-s3cr3t-v4lue"  # must never show up in a repr or an error
CLIENT_SECRET_ENV = "MQTT_TOKEND_CLIENT_SECRET"
MQTT_PASSWORD_ENV = "MQTT_TOKEND_MQTT_PASSWORD"


def parse(data: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None) -> Config:
    """parse_config with a valid [spotify] section unless `data` brings its own."""
    doc = {"spotify": {"client_id": "abc"}, **data}
    return parse_config(doc, base_dir=base_dir, environ=environ or {})


def errors_of(
    data: dict[str, Any], base_dir: Path, environ: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, base_dir, environ)
    return caught.value.errors


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
