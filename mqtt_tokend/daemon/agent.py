"""The agent's loop: refresh on time, recover in order, check health, answer requests.

One thread owns all state. MQTT callbacks only put items into the inbox; the loop waits on
it with a timeout that is the time left until the next deadline (refresh, retry, app token,
check), so nothing is polled. Deadlines live on the monotonic clock; a jump of the wall
clock (a Pi without an RTC meeting NTP) re-evaluates expiry instead of trusting them.
"""

from __future__ import annotations

import logging
import queue
import random
from dataclasses import replace
from typing import Any

from mqtt_tokend import __version__
from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.files import signature as file_signature
from mqtt_tokend.adapters.spotify import SpotifyClient, TokenGrant
from mqtt_tokend.adapters.store import Tokens, TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract import homeassistant
from mqtt_tokend.contract.health import (
    Health,
    State,
    auth_instructions,
    reauth_deadline,
)
from mqtt_tokend.contract.topics import OFFLINE, Topics
from mqtt_tokend.contract.wording import user_name
from mqtt_tokend.core.statemachine import Event, Facts, transition
from mqtt_tokend.core.timing import Clock, Deadline, refresh_at, retry_delay
from mqtt_tokend.daemon.answers import RequestHandler
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.broadcast import Broadcaster, Publisher
from mqtt_tokend.daemon.devices import Surroundings
from mqtt_tokend.daemon.inbox import Connected, InboxItem, RefreshGate, Request, Stop
from mqtt_tokend.daemon.notify import People
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.errors import (
    AccessTokenRejected,
    AuthRejected,
    ClientRejected,
    CryptoError,
    StoreError,
    TokendError,
    TransientError,
)

_LOG = logging.getLogger(__name__)

LOGIN_POLL_SECONDS = 2.0  # how often to look for a new login while one is needed
CLOCK_JUMP_SECONDS = 2.0  # a larger disagreement between wall and monotonic time is a jump
RECOVERY_EVENTS = (Event.REFRESHED, Event.LOGIN_STORED, Event.LOADED)


class Agent:
    """Owns the Spotify session and everything published about it."""

    def __init__(
        self,
        *,
        config: Config,
        store: TokenStore,
        spotify: SpotifyClient,
        cipher: TokenCipher,
        publisher: Publisher,
        inbox: queue.Queue[InboxItem],
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._agent = config.agent
        self._store = store
        self._spotify = spotify
        self._inbox = inbox
        self._clock = clock
        self._rng = rng or random.Random()
        self.out = Broadcaster(publisher, Topics(config.mqtt.base_topic), cipher)
        self._tokens: Tokens | None = None
        self._tokens_signature: tuple[int, int, int] | None = None
        self._key_signature = file_signature(config.agent.key_file)
        self._state = State.STARTING
        self._message = "starting"
        self._login_rejected = False
        self._failures = 0
        self._backup_tried = False
        self._user: str | None = None
        self._last_refresh: float | None = None
        self._gate = RefreshGate(min_interval=config.agent.min_refresh_interval)
        self._refresh_due: Deadline | None = None
        self._check_due = Deadline.after(0.0, clock)
        self._wall_offset = clock.wall() - clock.monotonic()
        self._expires_mono: float | None = None  # expiry of a token obtained by this process
        self._token_live = False  # a user token is retained on the broker now
        self._discovery_removed = False
        self.login = RemoteLogin(
            spotify=spotify, config=config.spotify, store=store, now=clock.wall
        )
        self._app = AppTokenKeeper(
            spotify=spotify,
            out=self.out,
            clock=clock,
            early=config.agent.refresh_early_seconds,
            retry=config.agent.max_backoff,
        )
        self.surroundings = Surroundings(
            spotify=spotify, out=self.out, clock=clock, zeroconf_url=config.player.zeroconf_url
        )
        config_path = str(config.path) if config.path else None
        self.people = People(
            out=self.out,
            state_dir=store.state_dir,
            login=self.login,
            instructions=auth_instructions(config_path),
            warn_days=config.agent.reauth_warn_days,
        )
        self.requests = RequestHandler(self)

    # ---- what others may read -----------------------------------------------------------

    @property
    def state(self) -> State:
        """The current health state."""
        return self._state

    @property
    def tokens(self) -> Tokens | None:
        """The user's tokens in use."""
        return self._tokens

    @property
    def clock(self) -> Clock:
        """The clock the agent runs on."""
        return self._clock

    @property
    def gate(self) -> RefreshGate:
        """Single flight and rate limit for refresh requests."""
        return self._gate

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a Stop item arrives."""
        self._start()
        while True:
            try:
                item = self._inbox.get(timeout=self._seconds_to_next_deadline())
            except queue.Empty:
                item = None
            if isinstance(item, Stop):
                return
            self.step(item)

    def step(self, item: InboxItem | None = None) -> None:
        """Handle one item (or none) and whatever is due: the loop body."""
        if isinstance(item, Connected):
            self._publish_discovery()
            self._publish_all()
        elif isinstance(item, Request) and self._is_birth(item):
            _LOG.info("Home Assistant (re)started; publishing discovery again")
            self._publish_discovery()
            self._publish_all()
        elif isinstance(item, Request):
            self.requests.handle(item)
        self._run_due()

    def _start(self) -> None:
        session = self._store.load_session()
        self._user = session.get("display_name") or session.get("user_id")
        last = session.get("last_refresh")
        self._last_refresh = float(last) if isinstance(last, int | float) else None
        self.people.reminded = {float(d) for d in session.get("reauth_warned", [])}
        self._load_tokens(Event.LOADED)

    def _run_due(self) -> None:
        self._watch_clock()
        self._pick_up_changes()
        if self._due(self._refresh_due):
            self.refresh("scheduled")
        needed = self._needs_app_token()
        if self._due(self._app.due) or (self._app.due is None) == needed:
            self._app.keep(needed=needed)  # fetch when first needed, withdraw when not
        if self._due(self._check_due):
            self.check()
        if self._token_live and self._tokens and self._tokens.expires_at <= self._clock.wall():
            self._publish_user_token()  # MQTT 3.1.1 brokers do not expire it for us
        self._apply(Event.TICK)

    def _due(self, deadline: Deadline | None) -> bool:
        return deadline is not None and deadline.remaining(self._clock) <= 0

    def _seconds_to_next_deadline(self) -> float:
        deadlines = [self._check_due, self._refresh_due, self._app.due]
        waits = [d.remaining(self._clock) for d in deadlines if d is not None]
        if self._login_rejected or self._tokens is None:
            waits.append(LOGIN_POLL_SECONDS)
        for expiry in (
            self._tokens.expires_at if self._tokens else None,
            self._app.expires_at,
        ):
            if expiry is not None and expiry > self._clock.wall():
                waits.append(expiry - self._clock.wall())  # the state changes when it expires
        return max(0.0, min(waits))

    # ---- tokens on disk ---------------------------------------------------------------

    def _load_tokens(self, event: Event) -> None:
        self._expires_mono = None
        try:
            tokens = self._store.load()
        except (StoreError, CryptoError) as err:
            self._tokens = None
            self._login_rejected = True
            self._apply(Event.LOADED, str(err))
            return
        finally:
            self._tokens_signature = self._store.tokens_signature()
        self._tokens = tokens
        self._login_rejected = tokens is None
        self._backup_tried = False
        if tokens is None:
            self._apply(event, "no Spotify login stored yet")
            return
        logsafe.remember(tokens.access_token, tokens.refresh_token)
        self._failures = 0
        self._schedule_refresh(tokens)
        self._check_due = Deadline.after(0.0, self._clock)  # verify what was loaded
        valid = tokens.seconds_left(self._clock.wall()) > 0
        self._apply(event, "login loaded" if valid else "stored token has expired; refreshing")

    def _pick_up_changes(self) -> None:
        """A login stored by `auth` (or the dashboard), or a rotated key file."""
        key_signature = file_signature(self._agent.key_file)
        if key_signature != self._key_signature:
            self._key_signature = key_signature
            self._reload_key()
        signature = self._store.tokens_signature()
        if signature is not None and signature != self._tokens_signature:
            _LOG.info("the token file changed (a new login?); loading it")
            self._load_tokens(Event.LOGIN_STORED)
            self._publish_user_token()
            self._publish_health()

    def _reload_key(self) -> None:
        try:
            cipher = TokenCipher.from_file(self._agent.key_file)
        except TokendError as err:
            _LOG.error("the key file changed but cannot be used (%s); keeping the old keys", err)
            return
        _LOG.info("the key file changed; re-encrypting with the new primary key")
        self.out.cipher = cipher
        self._store.use_cipher(cipher)
        if self._tokens is not None:
            self._save(self._tokens)
        self._publish_all()

    def _save(self, tokens: Tokens) -> bool:
        try:
            self._store.save(tokens)
        except (StoreError, OSError) as err:
            _LOG.error("cannot write the tokens to %s: %s", self._store.state_dir, err)
            self._apply(Event.WRITE_FAILED, f"cannot write the state directory: {err}")
            return False
        self._tokens_signature = self._store.tokens_signature()
        return True

    # ---- refreshing -------------------------------------------------------------------

    def _schedule_refresh(self, tokens: Tokens) -> None:
        due = refresh_at(
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            early=self._agent.refresh_early_seconds,
        )
        self._refresh_due = Deadline.at_wall(due, self._clock)

    def refresh(self, reason: str) -> bool:
        """One call to Spotify; True when a new token was stored and published."""
        tokens = self._tokens
        if tokens is None or self._login_rejected:
            self._refresh_due = None
            return False
        _LOG.info("refreshing the access token (%s)", reason)
        started = self._clock.wall()
        try:
            grant = self._spotify.refresh(tokens.refresh_token)
        except TransientError as err:
            self._retry_later(err, err.retry_after)
            return False
        except AuthRejected as err:
            return self._rejected(err, tokens)
        except ClientRejected as err:
            self._refresh_due = Deadline.after(self._agent.max_backoff, self._clock)
            self._apply(Event.CLIENT_REJECTED, str(err))
            return False
        except TokendError as err:
            self._retry_later(err, None)
            return False
        finally:
            self._gate.attempted(started_wall=started, ended=self._clock.monotonic())
        return self._accept(grant, tokens)

    def _accept(self, grant: TokenGrant, previous: Tokens) -> bool:
        now = self._clock.wall()
        tokens = Tokens(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or previous.refresh_token,
            expires_at=now + grant.expires_in,
            scope=grant.scope or previous.scope,
            issued_at=now,
            authorized_at=previous.authorized_at,
        )
        logsafe.remember(tokens.access_token, tokens.refresh_token)
        self._tokens = tokens  # in memory even if the disk fails: it may be the only copy
        if not self._save(tokens):  # the rotated refresh token is on disk before publishing
            self._refresh_due = Deadline.after(self._agent.max_backoff, self._clock)
            self._publish_health()
            return False
        self._expires_mono = self._clock.monotonic() + grant.expires_in
        self._failures = 0
        self._backup_tried = False
        self._last_refresh = now
        self._schedule_refresh(tokens)
        self._save_session(last_refresh=now)
        _LOG.info("new access token valid for %d s", grant.expires_in)
        self._apply(Event.REFRESHED, "token refreshed")
        self._publish_user_token()
        self._publish_health()
        self._refresh_devices()
        return True

    def _rejected(self, err: AuthRejected, tokens: Tokens) -> bool:
        """invalid_grant: try the backup's refresh token once, then ask a person."""
        if not self._backup_tried:
            self._backup_tried = True
            backup = self._store.load_backup()
            if backup is not None and backup.refresh_token != tokens.refresh_token:
                _LOG.warning("the refresh token was refused; trying the backup's once")
                self._tokens = backup
                return self.refresh("backup refresh token")
        self._refresh_due = None
        self._login_rejected = True
        self._apply(Event.GRANT_REJECTED, f"Spotify refused the refresh token: {err}")
        self._publish_health()
        return False

    def _retry_later(self, err: TokendError, retry_after: float | None) -> None:
        delay = retry_delay(
            self._failures, cap=self._agent.max_backoff, rng=self._rng, retry_after=retry_after
        )
        self._failures += 1
        self._refresh_due = Deadline.after(delay, self._clock)
        if retry_after is not None:
            self._gate.hold(until=self._clock.monotonic() + retry_after)
        _LOG.warning("refresh failed (%s); attempt %d, next in %.1f s", err, self._failures, delay)
        self._apply(Event.TRANSIENT_FAILURE, f"refresh failed ({err}); retrying in {delay:.0f} s")
        self._publish_health()

    # ---- the app token (degraded mode) ------------------------------------------------

    def _needs_app_token(self) -> bool:
        if not self._app.possible:
            return False
        tokens = self._tokens
        return self._login_rejected or tokens is None or tokens.expires_at <= self._clock.wall()

    # ---- health checks ----------------------------------------------------------------

    def check(self) -> None:
        """Verify the token with Spotify, refresh the devices, the player and the reminders."""
        self._check_due = Deadline.after(self._agent.check_interval, self._clock)
        tokens = self._tokens
        now = self._clock.wall()
        if tokens is not None and not self._login_rejected:
            if tokens.expires_at <= now:
                if self._refresh_due is None:
                    self.refresh("token expired")
            else:
                self._verify(tokens)
        self.surroundings.check_player()
        self._remind_reauth(now)
        self._publish_health()

    def _verify(self, tokens: Tokens) -> None:
        try:
            profile = self._spotify.me(tokens.access_token)
        except AccessTokenRejected:
            _LOG.warning("Spotify refused the current access token; refreshing now")
            self.refresh("access token refused")
            return
        except TokendError as err:
            _LOG.warning("health check could not reach Spotify: %s", err)
            return
        user = user_name(profile)
        if user is not None and user != self._user:
            self._user = user
            self._save_session(display_name=user, user_id=profile.get("id"))
        self._refresh_devices()

    def _refresh_devices(self) -> None:
        if self._tokens is not None:
            self.surroundings.publish_devices(self._tokens.access_token)

    def _reauth_by(self) -> float | None:
        tokens = self._tokens
        authorized = tokens.authorized_at if tokens else None
        return reauth_deadline(authorized, max_age_days=self._agent.refresh_token_max_age_days)

    def _remind_reauth(self, now: float) -> None:
        if self.people.remind(now, self._reauth_by()):
            self._save_session(reauth_warned=sorted(self.people.reminded))

    # ---- time -------------------------------------------------------------------------

    def _watch_clock(self) -> None:
        offset = self._clock.wall() - self._clock.monotonic()
        jump = offset - self._wall_offset
        if abs(jump) < CLOCK_JUMP_SECONDS:
            return
        self._wall_offset = offset
        _LOG.warning("the wall clock jumped by %+.0f s; re-evaluating expiry", jump)
        tokens = self._tokens
        if tokens is not None and self._expires_mono is not None:
            # Obtained by this process: its lifetime is known on the monotonic clock.
            expires_at = self._clock.wall() + (self._expires_mono - self._clock.monotonic())
            shift = expires_at - tokens.expires_at
            self._tokens = replace(
                tokens, expires_at=expires_at, issued_at=tokens.issued_at + shift
            )
            self._save(self._tokens)
            self._publish_user_token()
        else:
            self._check_due = Deadline.after(0.0, self._clock)  # ask Spotify, not the clock
        if self._tokens is not None and not self._login_rejected:
            self._schedule_refresh(self._tokens)

    # ---- state, people and publishing -------------------------------------------------

    def facts(self) -> Facts:
        """What is true now, for the state machine."""
        return Facts(
            now=self._clock.wall(),
            expires_at=self._tokens.expires_at if self._tokens else None,
            app_expires_at=self._app.expires_at,
            login_rejected=self._login_rejected,
        )

    def _apply(self, event: Event, message: str | None = None) -> None:
        state = transition(self._state, event, self.facts())
        if message is None and state != self._state:
            message = {
                State.DEGRADED: "no valid user token; the app token is served",
                State.ERROR: "no valid token: Spotify has not answered",
                State.AUTH_REQUIRED: "the login has expired",
            }.get(state, self._message)
        if state != self._state:
            _LOG.info("state %s -> %s: %s", self._state.value, state.value, message)
        changed = state != self._state or (message is not None and message != self._message)
        self._state = state
        self._message = message or self._message
        self._tell_people(event)
        if changed and event == Event.TICK:
            self._publish_user_token()
            self._publish_health()

    def note(self, message: str) -> None:
        """Say something in the health record's message (e.g. why a pasted login failed)."""
        self._message = message
        self._publish_health()

    def _tell_people(self, event: Event) -> None:
        """Write or clear the notice and alert as a person's part begins or ends."""
        now = self._clock.wall()
        if self._login_rejected:
            self.people.must_log_in(self._message, now)
        elif event == Event.CLIENT_REJECTED:
            self.people.client_rejected(self._message, now)
        elif event in RECOVERY_EVENTS:
            self.people.recovered(self._message, now)

    def health(self) -> Health:
        """The health record as of now."""
        tokens = self._tokens
        return Health(
            state=self._state,
            message=self._message,
            checked_at=self._clock.wall(),
            expires_at=tokens.expires_at if tokens else None,
            last_refresh=self._last_refresh,
            next_refresh=self._refresh_due.wall if self._refresh_due else None,
            consecutive_failures=self._failures,
            instructions=self.people.current.instructions if self.people.current else None,
            user=self._user,
            reauth_by=self._reauth_by(),
            auth_url=self.login.url if self._login_rejected else None,
            player=self.surroundings.player,
        )

    def _is_birth(self, request: Request) -> bool:
        message, ha = request.message, self._config.homeassistant
        return ha.enabled and homeassistant.is_birth(
            message.topic, message.payload, discovery_prefix=ha.discovery_prefix
        )

    def _publish_discovery(self) -> None:
        """Home Assistant discovery, retained; with it disabled, take the device away once."""
        ha = self._config.homeassistant
        if not ha.enabled and self._discovery_removed:
            return
        self._discovery_removed = not ha.enabled
        messages = homeassistant.device_messages(
            enabled=ha.enabled,
            base_topic=self.out.topics.base,
            discovery_prefix=ha.discovery_prefix,
            version=__version__,
            check_interval=self._agent.check_interval,
        )
        for topic, payload in messages:
            self.out.raw(topic, payload, retain=True)

    def _publish_all(self) -> None:
        self.out.online()
        self._publish_user_token()
        self._app.publish()
        self._publish_health()

    def _publish_user_token(self) -> None:
        tokens, now = self._tokens, self._clock.wall()
        # A refused login's access token is served until it expires, then cleared.
        self._token_live = tokens is not None and tokens.expires_at > now
        if tokens is None:
            self.out.token(kind="user", access_token=None, now=now)
            return
        self.out.token(
            kind="user",
            access_token=tokens.access_token,
            scope=tokens.scope,
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            now=now,
        )

    def _publish_health(self) -> None:
        payload = self.health().to_payload()
        self.out.health(payload)
        try:
            self._store.save_status(payload)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the status file: %s", err)

    def _save_session(self, **changes: Any) -> None:
        session = self._store.load_session() | changes
        try:
            self._store.save_session(session)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the session record: %s", err)

    def final_messages(self) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        health = replace(self.health(), message="agent stopped")
        topics = self.out.topics
        return [
            (topics.health, health.to_json().encode()),
            (topics.availability, OFFLINE.encode()),
        ]
