"""The sinks fed each snapshot of the session: the people-facing notices, MQTT (tokens, health,
devices, Home Assistant discovery) and the status file. They only publish what the keeper has
already written to disk."""

from __future__ import annotations

import logging
from dataclasses import replace

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
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.daemon.snapshot import Retained, ServedToken, Snapshot
from mqtt_tokend.errors import StoreError

_LOG = logging.getLogger(__name__)


class Sinks:
    """Everything the agent tells the world, in the order a consumer can rely on."""

    def __init__(
        self,
        *,
        mqtt: Broadcaster,
        notifier: Notifier,
        login: RemoteLogin,
        store: TokenStore,
        homeassistant: HomeAssistantConfig,
        check_interval: float,
        broker: BrokerWatch | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._notifier = notifier
        self._login = login
        self._store = store  # only for the status file
        self._ha = homeassistant
        self._check_interval = check_interval
        self._token_live = False  # a user token is retained on the broker now
        self._discovery_removed = False
        self._broker = broker  # its problem overrides health while the broker is lost
        self._ready = False  # systemd has been told READY=1
        self._login_shown: str | None = None  # the URL retained on <base>/login now

    def feed(self, snapshot: Snapshot) -> None:
        """Tell people, then publish what the step changed: tokens before health."""
        self._notifier.follow(snapshot)
        changed = snapshot.changed
        everything = Retained.EVERYTHING in changed
        if everything:
            self._mqtt.online()
        user = snapshot.user_token
        expired_but_retained = (
            self._token_live and user is not None and user.expires_at <= snapshot.now
        )
        if everything or Retained.USER_TOKEN in changed or expired_but_retained:
            self._publish_token(
                TokenKind.USER, user, snapshot.now
            )  # 3.1.1 brokers do not expire it
        if Retained.APP_TOKEN in changed or (everything and snapshot.app_token is not None):
            self._publish_token(TokenKind.APP, snapshot.app_token, snapshot.now)
        self._publish_login(snapshot, force=everything)
        if everything or Retained.HEALTH in changed:
            self._publish_health(snapshot)
        if snapshot.devices is not None:
            self._mqtt.devices(list(snapshot.devices), now=snapshot.now)

    def announce(self, snapshot: Snapshot) -> None:
        """After (re)connecting or Home Assistant's birth: discovery and every retained message."""
        self._publish_discovery()
        self.feed(replace(snapshot, changed=frozenset({Retained.EVERYTHING})))

    def is_birth(self, message: Message) -> bool:
        """Home Assistant (re)started and wants discovery again."""
        return self._ha.enabled and homeassistant.is_birth(
            message.topic, message.payload, discovery_prefix=self._ha.discovery_prefix
        )

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
            login_topic=self._mqtt.topics.login if self._login_offered(snapshot) else None,
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
        health = replace(self.health(snapshot), message="agent stopped")
        topics = self._mqtt.topics
        return [
            (topics.health, health.to_json().encode()),
            (topics.availability, OFFLINE.encode()),
        ]

    def _publish_token(self, kind: TokenKind, token: ServedToken | None, now: float) -> None:
        if (
            kind == TokenKind.USER
        ):  # a refused login's token is served until it expires, then cleared
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

    def _login_offered(self, snapshot: Snapshot) -> bool:
        return snapshot.login_rejected and self._login.url is not None

    def _publish_login(self, snapshot: Snapshot, *, force: bool) -> None:
        """The offered login's URL on its own topic, which only the agent and Home Assistant
        read: it carries the login's state. A stale offer is renewed first."""
        url = self._login.current() if snapshot.login_rejected else None
        if force or url != self._login_shown:
            self._mqtt.login(url)
            self._login_shown = url

    def _publish_health(self, snapshot: Snapshot) -> None:
        payload = self.health(snapshot).to_payload()
        self._mqtt.health(payload)
        self._mqtt.online()  # a monitor that judged us stuck said offline: we are back
        try:
            self._store.save_status(payload)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the status file: %s", err)
        line = f"{payload['state']}: {payload['message']}"
        if not self._ready:  # the first word of health is out: systemd may start what needs us
            self._ready = systemd.ready(line)
        else:
            systemd.status(line)

    def _publish_discovery(self) -> None:
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
