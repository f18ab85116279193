"""What the agent says about the login: its retained health record, kept current."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from mqtt_tokend.adapters.mqtt import MqttLink
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.webapi.feed import shared_link

_LOG = logging.getLogger(__name__)

MAX_RECORD = 16 * 1024  # a health record is about 1 KiB; anything far larger is not one

# States in which the agent has no user token to give (degraded: it serves the app token).
NO_USER_TOKEN = frozenset((State.AUTH_REQUIRED.value, State.DEGRADED.value))


@dataclass(frozen=True)
class Login:
    """The part of a health record a Web API client acts on."""

    state: str | None  # None: no record seen yet
    instructions: str | None = None
    message: str = ""

    @property
    def no_user_token(self) -> bool:
        """True while the agent has no user token (auth_required, degraded)."""
        return self.state in NO_USER_TOKEN

    @property
    def needs_person(self) -> bool:
        """True while the user's login waits for a person (the agent then says what to do)."""
        return self.state == State.AUTH_REQUIRED.value or (
            self.no_user_token and self.instructions is not None
        )


class HealthView:
    """Subscribes to `<base>/health` and keeps the newest record's state and instructions."""

    def __init__(self, mqtt: MqttConfig) -> None:
        self.topic = Topics(mqtt.base_topic).health
        self._mqtt = mqtt
        self._lock = threading.Condition()
        self._login = Login(None)
        self._waited = False
        self._link: MqttLink | None = None

    def start(self) -> HealthView:
        """Connect on its own, in the background (SpotifyClient shares one connection instead)."""
        if self._link is None:
            self._link = shared_link(self._mqtt, {self.topic: self.receive})
            self._link.start()
        return self

    def stop(self) -> None:
        """Disconnect."""
        link, self._link = self._link, None
        if link is not None:
            link.stop()

    def login(self, wait: float = 0.0) -> Login:
        """The newest view; the first call waits up to `wait` s for a first record (later
        calls never wait: a broker account that may not read health must not slow each call)."""
        deadline = time.monotonic() + (0.0 if self._waited else wait)
        with self._lock:
            while self._login.state is None and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            self._waited = True
            return self._login

    def receive(self, message: Message) -> None:
        """Take one health message (hostile input: anything unreadable is ignored)."""
        if message.topic != self.topic or not message.payload:
            return
        if len(message.payload) > MAX_RECORD:
            _LOG.warning("ignored a %d-byte message on %s", len(message.payload), self.topic)
            return
        try:
            record = json.loads(message.payload)
        except (ValueError, RecursionError):
            record = None
        if not isinstance(record, dict) or not isinstance(state := record.get("state"), str):
            _LOG.warning("ignored a message on %s that is not a health record", self.topic)
            return
        instructions, text = record.get("instructions"), record.get("message")
        login = Login(
            state,
            instructions if isinstance(instructions, str) else None,
            text[:300] if isinstance(text, str) else "",
        )
        with self._lock:
            self._login = login
            self._lock.notify_all()
