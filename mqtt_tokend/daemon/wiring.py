"""Wiring for `mqtt-tokend run`: build the collaborators, start MQTT, run the agent's loop."""

from __future__ import annotations

import logging
import queue
import random
import re
import secrets
import socket

from mqtt_tokend.adapters import logsafe, signals, systemd
from mqtt_tokend.adapters.broker_errors import describe
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.files import atomic_write
from mqtt_tokend.adapters.lock import StateDirLock
from mqtt_tokend.adapters.mqtt import MqttLink
from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract import homeassistant
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import OFFLINE, Topics
from mqtt_tokend.contract.wire import MAX_REQUEST_BYTES
from mqtt_tokend.contract.wording import auth_instructions, client_fix
from mqtt_tokend.core.timing import Clock, SystemClock
from mqtt_tokend.daemon import loop
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.broker_watch import BrokerWatch
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Connected, Disconnected, InboxItem, Request, Stop
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.notify import Notifier
from mqtt_tokend.daemon.ports import Publisher, SpotifyPort
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.daemon.sinks import MqttSink, Sinks, StatusFile, SystemdStatus
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.errors import ConfigError, CryptoError

_LOG = logging.getLogger(__name__)

# The largest packet the agent takes from the broker: a request's 4 KiB payload, its topic and
# MQTT 5 properties. Announced in CONNECT, so the broker never delivers a larger one.
MAX_PACKET = MAX_REQUEST_BYTES + 4096


CLIENT_ID_FILE = "mqtt_client_id"  # in the state directory: the agent's session name


def agent_client_id(config: Config) -> str:
    """The agent's MQTT client id: `mqtt.client_id`, or `mqtt-tokend-<host>-<random>`.

    A broker without use_username_as_clientid lets any account that connects with the agent's
    id take over (and end) its session, so the default must not be guessable. The random part
    is made once per state directory (0600, one agent per directory holds its lock), so a
    restart keeps the same session name; if the file cannot be kept, a random one per process.
    """
    if config.mqtt.client_id:
        return config.mqtt.client_id
    path = config.agent.state_dir / CLIENT_ID_FILE
    try:
        suffix = path.read_text().strip()
    except OSError:
        suffix = ""
    if not re.fullmatch(r"[0-9a-f]{24}", suffix):
        suffix = secrets.token_hex(12)
        try:
            atomic_write(path, f"{suffix}\n".encode(), mode=0o600)
        except OSError as err:
            _LOG.warning("%s cannot be written (%s): a new client id each start", path, err)
    return f"mqtt-tokend-{socket.gethostname()[:20]}-{suffix}"


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
    clock: Clock,
    rng: random.Random | None = None,
    broker: BrokerWatch | None = None,
) -> Agent:
    """The keeper, the sinks and the loop around them, for this configuration."""
    settings = config.agent
    mqtt = Broadcaster(publisher, Topics(config.mqtt.base_topic), cipher)
    login = RemoteLogin(spotify=spotify, config=config.spotify, store=store, now=clock.wall)
    keeper = SessionKeeper(
        settings=settings,
        # A rotated key file: the store re-encrypts with it, and so does the MQTT output.
        files=TokenFiles(store=store, key_file=settings.key_file, on_new_key=mqtt.use_cipher),
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
        instructions=auth_instructions(str(config.path) if config.path else None),
        client_instructions=client_fix(str(config.path) if config.path else None),
    )
    outputs = MqttSink(
        mqtt=mqtt,
        homeassistant=config.homeassistant,
        check_interval=settings.check_interval,
    )
    sinks = Sinks(
        notifier=notifier,
        mqtt=outputs,
        others=(StatusFile(store=store), SystemdStatus()),
        login_topic=mqtt.topics.login,
        broker=broker,
    )
    return Agent(
        keeper=keeper, sinks=sinks, login=login, mqtt=mqtt, broker=broker, now=clock.monotonic
    )


# The most Spotify calls one step of the loop makes (refresh, profile, devices, player); each
# is bounded by spotify.request_timeout, so a step lasts at most this many timeouts.
CALLS_PER_STEP = 4


def _warn_of_slow_steps(config: Config, ping_interval: float | None) -> None:
    """systemd would restart an agent whose step outlasts WatchdogSec: say so at start."""
    if ping_interval is None:
        return
    longest = CALLS_PER_STEP * config.spotify.request_timeout
    if longest >= ping_interval * 2:
        _LOG.warning(
            "spotify.request_timeout = %g s: one step of the loop may take %g s, not less than "
            "the service's WatchdogSec=%g s; lower spotify.request_timeout below %g s",
            config.spotify.request_timeout,
            longest,
            ping_interval * 2,
            ping_interval * 2 / CALLS_PER_STEP,
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
        on_disconnected=lambda: inbox.put(Disconnected()),
        max_packet=MAX_PACKET,
    )
    spotify = make_spotify(config)
    broker = BrokerWatch(
        connected=lambda: link.connected,
        last_error=lambda: link.last_error,
        where=describe(config.mqtt),
        config_path=str(config.path) if config.path else None,
        monotonic=clock.monotonic,
    )
    agent = build_agent(
        config=config,
        store=store,
        spotify=spotify,
        cipher=cipher,
        publisher=link,
        clock=clock,
        broker=broker,
    )
    _warn_of_slow_steps(config, watchdog)

    def on_stop(name: str) -> None:  # on a thread of its own, never inside a signal handler
        _LOG.info("received %s; stopping", name)
        inbox.put(Stop())

    signals.on_stop_signals(on_stop)
    _LOG.info("mqtt-tokend starting; broker %s, base topic %s", describe(config.mqtt), topics.base)
    link.start()  # READY=1 goes with the first health record (sinks)
    try:
        loop.run(agent, inbox)
    finally:
        systemd.stopping()
        link.stop(last=agent.final_messages())
        spotify.close()
        lock.release()
        _LOG.info("stopped")
    return 0
