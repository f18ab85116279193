"""What arrives at the agent's loop."""

from __future__ import annotations

from dataclasses import dataclass

from mqtt_tokend.contract.messages import Message

__all__ = ["Connected", "Disconnected", "InboxItem", "Request", "Stop"]


class Connected:
    """Inbox item: the broker (re)accepted us; republish every retained message."""


class Disconnected:
    """Inbox item: the connection to the broker was lost (health follows after a grace)."""


class Stop:
    """Inbox item: stop the loop."""


@dataclass(frozen=True)
class Request:
    """Inbox item: a message on a request topic and when it arrived (monotonic)."""

    message: Message
    received: float


InboxItem = Connected | Disconnected | Stop | Request
