"""The sinks fed each snapshot of the session, behind one small protocol: MQTT (tokens, health,
devices, the login link, Home Assistant discovery), the status file and systemd. None knows of
another. They only publish what the keeper has already written to disk.

People are told first (the notice and the alerts): what they are told, and the login offered
to them, is part of the health record every sink is then given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from mqtt_tokend._version import __version__
from mqtt_tokend.adapters import systemd
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import HomeAssistantConfig
from mqtt_tokend.contract import homeassistant
from mqtt_tokend.contract.health import Health, State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import OFFLINE
from mqtt_tokend.contract.wire import TokenKind
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.broker_watch import BrokerWatch
from mqtt_tokend.daemon.notify import Notifier
from mqtt_tokend.daemon.snapshot import Retained, ServedToken, Snapshot
from mqtt_tokend.errors import StoreError

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Told:
    """What people are told after a step: the health record, and the login link offered."""

    health: Health
    login_url: str | None = field(default=None, repr=False)  # it carries the login's state


class Sink(Protocol):
    """One output of the agent, given each snapshot with what people are told."""

    def feed(self, snapshot: Snapshot, told: Told) -> None:
        """Tell the world what the step changed."""
        ...


def health_changed(snapshot: Snapshot) -> bool:
    """The step changed the health record (or everything is said again)."""
    return bool(snapshot.changed & {Retained.HEALTH, Retained.EVERYTHING})


class StatusFile:
    """The health record in the state directory, for `status` and `health-check`."""

    def __init__(self, *, store: TokenStore) -> None:
        self._store = store

    def feed(self, snapshot: Snapshot, told: Told) -> None:
        """Write the health record when it changed."""
        if not health_changed(snapshot):
            return
        try:
            self._store.save_status(told.health.to_payload())
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the status file: %s", err)


class SystemdStatus:
    """READY=1 with the first health record, then the state and message as the unit's status."""

    def __init__(self) -> None:
        self._ready = False  # systemd has been told READY=1

    def feed(self, snapshot: Snapshot, told: Told) -> None:
        """Say the health record's first words to systemd when it changed."""
        if not health_changed(snapshot):
            return
        line = f"{told.health.state.value}: {told.health.message}"
        if not self._ready:  # the first word of health is out: systemd may start what needs us
            self._ready = systemd.ready(line)
        else:
            systemd.status(line)


class MqttSink:
    """The retained messages on the broker, in the order a consumer can rely on: tokens before
    health."""

    def __init__(
        self,
        *,
        mqtt: Broadcaster,
        homeassistant: HomeAssistantConfig,
        check_interval: float,
    ) -> None:
        self._mqtt = mqtt
        self._ha = homeassistant
        self._check_interval = check_interval
        self._token_live = False  # a user token is retained on the broker now
        self._discovery_removed = False
        self._login_shown: str | None = None  # the URL retained on <base>/login now

    def feed(self, snapshot: Snapshot, told: Told) -> None:
        """Publish what the step changed: tokens before health."""
        changed = snapshot.changed
        everything = Retained.EVERYTHING in changed
        if everything:
            self._mqtt.online()
        user = snapshot.user_token
        expired_but_retained = (
            self._token_live and user is not None and user.expires_at <= snapshot.now
        )
        if everything or Retained.USER_TOKEN in changed or expired_but_retained:
            self._publish_token(TokenKind.USER, user, snapshot.now)  # 3.1.1 brokers keep it
        if Retained.APP_TOKEN in changed or (everything and snapshot.app_token is not None):
            self._publish_token(TokenKind.APP, snapshot.app_token, snapshot.now)
        if everything or told.login_url != self._login_shown:
            self._mqtt.login(told.login_url)  # its own topic: only the agent and HA read it
            self._login_shown = told.login_url
        if health_changed(snapshot):
            self._mqtt.health(told.health.to_payload())
            self._mqtt.online()  # a monitor that judged us stuck said offline: we are back
        if snapshot.devices is not None:
            self._mqtt.devices(list(snapshot.devices), now=snapshot.now)

    def is_birth(self, message: Message) -> bool:
        """Home Assistant (re)started and wants discovery again."""
        return self._ha.enabled and homeassistant.is_birth(
            message.topic, message.payload, discovery_prefix=self._ha.discovery_prefix
        )

    def publish_discovery(self) -> None:
        """Home Assistant discovery, retained; with it disabled, take the device away once."""
        ha = self._ha
        if not ha.enabled and self._discovery_removed:
            return
        self._discovery_removed = not ha.enabled
        messages = homeassistant.device_messages(
            enabled=ha.enabled,
            base_topic=self._mqtt.topics.base,
            discovery_prefix=ha.discovery_prefix,
            version=__version__,
            check_interval=self._check_interval,
            configuration_url=ha.configuration_url,
        )
        for topic, payload in messages:
            self._mqtt.raw(topic, payload, retain=True)

    def final_messages(self, health: Health) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        topics = self._mqtt.topics
        return [
            (topics.health, health.to_json().encode()),
            (topics.availability, OFFLINE.encode()),
        ]

    def _publish_token(self, kind: TokenKind, token: ServedToken | None, now: float) -> None:
        if kind == TokenKind.USER:  # a refused login's token is served until it expires
            self._token_live = token is not None and token.expires_at > now
        if token is None:
            self._mqtt.token(kind=kind, access_token=None, now=now)
            return
        self._mqtt.token(
            kind=kind,
            access_token=token.access_token,
            scope=token.scope,
            expires_at=token.expires_at,
            issued_at=token.issued_at,
            now=now,
        )


class Sinks:
    """Everything the agent tells the world: people first, then every sink with the health
    record that says what they were told."""

    def __init__(
        self,
        *,
        notifier: Notifier,
        mqtt: MqttSink,
        others: Sequence[Sink],
        login_topic: str,
        broker: BrokerWatch | None = None,
    ) -> None:
        self._notifier = notifier
        self._mqtt = mqtt
        self._sinks: tuple[Sink, ...] = (mqtt, *others)
        self._login_topic = login_topic
        self._broker = broker  # its problem overrides health while the broker is lost

    def feed(self, snapshot: Snapshot) -> None:
        """Tell people, then every sink what the step changed."""
        self._notifier.follow(snapshot)
        told = Told(self.health(snapshot), snapshot.login_url)
        for sink in self._sinks:
            sink.feed(snapshot, told)

    def announce(self, snapshot: Snapshot) -> None:
        """After (re)connecting or Home Assistant's birth: discovery and every retained message."""
        self._mqtt.publish_discovery()
        self.feed(replace(snapshot, changed=frozenset({Retained.EVERYTHING})))

    def is_birth(self, message: Message) -> bool:
        """Home Assistant (re)started and wants discovery again."""
        return self._mqtt.is_birth(message)

    def health(self, snapshot: Snapshot) -> Health:
        """The health record of a snapshot, with what people are told to do."""
        current = self._notifier.current
        health = Health(
            state=snapshot.state,
            message=snapshot.message,
            checked_at=snapshot.now,
            expires_at=snapshot.user_token.expires_at if snapshot.user_token else None,
            last_refresh=snapshot.last_refresh,
            next_refresh=snapshot.next_refresh,
            consecutive_failures=snapshot.failures,
            instructions=current.instructions if current else None,
            user=snapshot.user,
            reauth_by=snapshot.reauth_by,
            login_topic=self._login_topic if snapshot.login_url is not None else None,
            player=snapshot.player,
            retry_after_until=snapshot.retry_after_until,
        )
        broker = self._broker
        if broker is None or broker.problem is None:
            return health
        return replace(
            health, state=State.ERROR, message=broker.problem, instructions=broker.instructions
        )

    def login_failed(self, now: float) -> None:
        """An `auth_failed` alert (Home Assistant shows it)."""
        self._notifier.login_failed(now)

    def final_messages(self, snapshot: Snapshot) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        return self._mqtt.final_messages(replace(self.health(snapshot), message="agent stopped"))
