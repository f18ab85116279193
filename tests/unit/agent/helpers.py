"""What the agent's tests share: its base topic, a request as the inbox hands it over, the last
health record, a revoked login."""

from __future__ import annotations

import json

from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import AuthRejected
from tests.fakes import FakeClock, FakePublisher, FakeSpotify

BASE = "test/agent"
TOPICS = Topics(BASE)


def request(
    clock: FakeClock, verb: str, body: object = None, *, retain: bool = False, raw: bytes = b""
) -> Request:
    payload = raw or (json.dumps(body).encode() if body is not None else b"")
    message = Message(topic=TOPICS.request(verb), payload=payload, retain=retain)
    return Request(message=message, received=clock.monotonic())


def health(publisher: FakePublisher) -> dict[str, object]:
    result: dict[str, object] = publisher.last(TOPICS.health).json()
    return result


def revoke(agent: Agent, clock: FakeClock, spotify: FakeSpotify) -> None:
    spotify.failures = [AuthRejected("revoked", description="Refresh token revoked")]
    clock.advance(2400)
    agent.step()
