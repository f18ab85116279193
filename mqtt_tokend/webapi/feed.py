"""One MQTT connection for everything a Web API client reads from the agent.

A locked-down broker names each session after its user, so a second connection of the same
user replaces the first: the client's user token, app token and health share this one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from mqtt_tokend.adapters.mqtt import MqttLink
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.contract.messages import Message


def shared_link(mqtt: MqttConfig, receivers: Mapping[str, Callable[[Message], None]]) -> MqttLink:
    """A (not yet started) connection subscribed to each topic in `receivers`, passing each
    message to the receiver of its topic."""
    topics = dict(receivers)

    def dispatch(message: Message) -> None:
        receive = topics.get(message.topic)
        if receive is not None:
            receive(message)

    return MqttLink(
        mqtt,
        client_id=f"mqtt-tokend-webapi-{uuid.uuid4().hex[:8]}",
        will=None,
        subscriptions=list(topics),
        on_connected=lambda: None,  # the broker resends the retained messages on subscribe
        on_message=dispatch,
    )
