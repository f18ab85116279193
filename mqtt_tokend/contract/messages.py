"""A received MQTT message and where its answer goes: plain values, free of paho."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """A received message, with the MQTT 5 request/response properties when present."""

    topic: str
    payload: bytes = field(repr=False)
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True)
class Reply:
    """Where an answer goes: the response topic plus MQTT 5 correlation data."""

    topic: str
    correlation_data: bytes | None = None
