"""Wiring for `mqtt-tokend run`: build the collaborators, start MQTT, run the agent's loop."""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import signal
import socket
import threading
from types import FrameType

from mqtt_tokend.adapters import logsafe, systemd
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.lock import StateDirLock
from mqtt_tokend.adapters.mqtt import MqttLink, describe
from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract import homeassistant
from mqtt_tokend.contract.health import auth_instructions
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import OFFLINE, Topics
from mqtt_tokend.contract.wire import MAX_REQUEST_BYTES
from mqtt_tokend.core.timing import Clock, SystemClock
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Connected, InboxItem, Request, Stop
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.loop import Agent
from mqtt_tokend.daemon.notify import Notifier
from mqtt_tokend.daemon.ports import Publisher, SpotifyPort
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.daemon.sinks import Sinks
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.errors import ConfigError, CryptoError

_LOG = logging.getLogger(__name__)

# The largest packet the agent takes from the broker: a request's 4 KiB payload, its topic and
# MQTT 5 properties. Announced in CONNECT, so the broker never delivers a larger one.
MAX_PACKET = MAX_REQUEST_BYTES + 4096


def agent_client_id(config: Config) -> str:
    """A stable MQTT client id: one agent per host and base topic."""
    if config.mqtt.client_id:
        return config.mqtt.client_id
    digest = hashlib.sha256(config.mqtt.base_topic.encode()).hexdigest()[:8]
    return f"mqtt-tokend-{socket.gethostname()}-{digest}"[:64]


def subscriptions(config: Config) -> list[str]:
    """What the agent listens to: requests, and Home Assistant's birth message."""
    topics = [Topics(config.mqtt.base_topic).requests]
    if config.homeassistant.enabled:
        topics.append(homeassistant.status_topic(config.homeassistant.discovery_prefix))
    return topics


def make_spotify(config: Config) -> SpotifyClient:
    """The Spotify client for this configuration."""
    spotify = config.spotify
    return SpotifyClient(
        client_id=spotify.client_id,
        client_secret=spotify.client_secret,
        accounts_url=spotify.accounts_url,
        api_url=spotify.api_url,
        timeout=spotify.request_timeout,
    )


def build_agent(
    *,
    config: Config,
    store: TokenStore,
    spotify: SpotifyPort,
    cipher: TokenCipher,
    publisher: Publisher,
    inbox: queue.Queue[InboxItem],
    clock: Clock,
    rng: random.Random | None = None,
) -> Agent:
    """The keeper, the sinks and the loop around them, for this configuration."""
    settings = config.agent
    mqtt = Broadcaster(publisher, Topics(config.mqtt.base_topic), cipher)
    login = RemoteLogin(spotify=spotify, config=config.spotify, store=store, now=clock.wall)
    keeper = SessionKeeper(
        settings=settings,
        files=TokenFiles(store=store, key_file=settings.key_file, cipher=cipher),
        spotify=spotify,
        app=AppTokenKeeper(
            spotify=spotify,
            clock=clock,
            early=settings.refresh_early_seconds,
            retry=settings.max_backoff,
        ),
        devices=DeviceWatch(spotify=spotify, zeroconf_url=config.player.zeroconf_url),
        clock=clock,
        rng=rng,
    )
    notifier = Notifier(
        out=mqtt,
        state_dir=store.state_dir,
        login=login,
        instructions=auth_instructions(str(config.path) if config.path else None),
    )
    sinks = Sinks(
        mqtt=mqtt,
        notifier=notifier,
        login=login,
        store=store,
        homeassistant=config.homeassistant,
        check_interval=settings.check_interval,
    )
    return Agent(
        keeper=keeper, sinks=sinks, login=login, mqtt=mqtt, inbox=inbox, now=clock.monotonic
    )


def serve(config: Config) -> int:
    """Run the agent in the foreground until SIGTERM or SIGINT; return the exit status."""
    logsafe.remember(config.spotify.client_secret, config.mqtt.password)
    try:
        cipher = TokenCipher.from_file(config.agent.key_file)
    except CryptoError as err:  # a missing or unusable key file is configuration: exit 78
        raise ConfigError(str(err)) from None
    logsafe.remember(*(line.strip() for line in config.agent.key_file.read_text().splitlines()))
    store = TokenStore(config.agent.state_dir, cipher=cipher)
    store.ensure_dir()
    lock = StateDirLock(config.agent.state_dir)
    lock.acquire()  # before anything is published or refreshed: one agent per state directory
    clock = SystemClock()
    topics = Topics(config.mqtt.base_topic)
    watchdog = systemd.watchdog_interval()
    inbox: queue.Queue[InboxItem] = (
        queue.Queue() if watchdog is None else systemd.HeartbeatQueue(watchdog)
    )

    def on_message(message: Message) -> None:
        inbox.put(Request(message=message, received=clock.monotonic()))

    link = MqttLink(
        config.mqtt,
        client_id=agent_client_id(config),
        will=(topics.availability, OFFLINE.encode()),
        subscriptions=subscriptions(config),
        on_connected=lambda: inbox.put(Connected()),
        on_message=on_message,
        max_packet=MAX_PACKET,
    )
    spotify = make_spotify(config)
    agent = build_agent(
        config=config,
        store=store,
        spotify=spotify,
        cipher=cipher,
        publisher=link,
        inbox=inbox,
        clock=clock,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _LOG.info("received %s; stopping", signal.Signals(signum).name)
        # Queue.put takes a lock the interrupted main thread may hold: hand it to a thread.
        threading.Thread(target=inbox.put, args=(Stop(),), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _LOG.info("mqtt-tokend starting; broker %s, base topic %s", describe(config.mqtt), topics.base)
    link.start()
    systemd.ready(f"serving {topics.base}")
    try:
        agent.run()
    finally:
        systemd.stopping()
        link.stop(last=agent.final_messages())
        spotify.close()
        lock.release()
        _LOG.info("stopped")
    return 0
