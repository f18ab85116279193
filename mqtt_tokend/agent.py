"""The agent's loop: refresh on time, check health, answer requests, publish state.

One thread owns all state. MQTT callbacks only put items into the inbox; the loop waits on
it with a timeout that is the time left until the next deadline (refresh, retry, check),
so nothing is polled. Requests that arrive while a refresh is in flight share its result.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import random
from dataclasses import replace
from typing import Any, Protocol

from mqtt_tokend.config import Config
from mqtt_tokend.crypto import TokenCipher
from mqtt_tokend.errors import (
    AccessTokenRejected,
    AuthRejected,
    ClientRejected,
    CryptoError,
    SpotifyError,
    StoreError,
    TokendError,
    TransientError,
)
from mqtt_tokend.health import Health, State, auth_instructions
from mqtt_tokend.inbox import (
    Connected,
    InboxItem,
    RefreshGate,
    Request,
    RequestError,
    Stop,
    parse_request,
)
from mqtt_tokend.mqtt import Reply
from mqtt_tokend.spotify import SpotifyClient, TokenGrant
from mqtt_tokend.store import Tokens, TokenStore
from mqtt_tokend.timing import Clock, Deadline, refresh_at, retry_delay
from mqtt_tokend.topics import (
    OFFLINE,
    ONLINE,
    REQUEST_VERBS,
    TOKEN_KIND_USER,
    Topics,
    response_payload,
    token_plaintext,
)

_LOG = logging.getLogger(__name__)

LOGIN_POLL_SECONDS = 2.0  # how often to look for a new login while one is needed


class Publisher(Protocol):
    """What the agent needs from the MQTT side."""

    @property
    def connected(self) -> bool:
        """True while the broker has accepted us."""

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        retain: bool,
        expiry: int | None = None,
        reply: Reply | None = None,
    ) -> None:
        """Publish at QoS 1."""


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
        self._topics = Topics(config.mqtt.base_topic)
        self._store = store
        self._spotify = spotify
        self._cipher = cipher
        self._publisher = publisher
        self._inbox = inbox
        self._clock = clock
        self._rng = rng or random.Random()
        self._tokens: Tokens | None = None
        self._tokens_signature: tuple[int, int, int] | None = None
        self._state = State.STARTING
        self._message = "starting"
        self._failures = 0
        self._user: str | None = None
        self._last_refresh: float | None = None
        self._gate = RefreshGate(min_interval=config.agent.min_refresh_interval)
        self._refresh_due: Deadline | None = None
        self._check_due = Deadline.after(0.0, clock)

    @property
    def state(self) -> State:
        """The current health state."""
        return self._state

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
            self._handle(item)
            self._run_due()

    def step(self, item: InboxItem | None = None) -> None:
        """Handle one item (or none) and whatever is due: the loop body, for tests."""
        self._handle(item)
        self._run_due()

    def _start(self) -> None:
        session = self._store.load_session()
        self._user = session.get("display_name") or session.get("user_id")
        last = session.get("last_refresh")
        self._last_refresh = float(last) if isinstance(last, int | float) else None
        self._load_tokens()
        self._publish_health()

    def _handle(self, item: InboxItem | None) -> None:
        if isinstance(item, Connected):
            self._publish_all()
        elif isinstance(item, Request):
            self._handle_request(item)

    def _run_due(self) -> None:
        self._pick_up_new_login()
        if self._refresh_due is not None and self._refresh_due.remaining(self._clock) <= 0:
            self._refresh("scheduled")
        if self._check_due.remaining(self._clock) <= 0:
            self._check()

    def _seconds_to_next_deadline(self) -> float:
        waits = [self._check_due.remaining(self._clock)]
        if self._refresh_due is not None:
            waits.append(self._refresh_due.remaining(self._clock))
        if self._tokens is None or self._state == State.AUTH_REQUIRED:
            waits.append(LOGIN_POLL_SECONDS)
        return max(0.0, min(waits))

    # ---- tokens -----------------------------------------------------------------------

    def _load_tokens(self) -> None:
        try:
            tokens = self._store.load()
        except (StoreError, CryptoError) as err:
            self._tokens = None
            self._set_state(State.AUTH_REQUIRED, str(err))
            return
        finally:
            self._tokens_signature = self._store.tokens_signature()
        self._tokens = tokens
        if tokens is None:
            self._set_state(State.AUTH_REQUIRED, "no Spotify login stored yet")
            return
        self._failures = 0
        self._schedule_refresh(tokens)
        if tokens.seconds_left(self._clock.wall()) > 0:
            self._set_state(State.OK, "token loaded from the state directory")
        else:
            self._set_state(State.STARTING, "stored token has expired; refreshing")

    def _pick_up_new_login(self) -> None:
        signature = self._store.tokens_signature()
        if signature is None or signature == self._tokens_signature:
            return
        _LOG.info("the token file changed (a new login?); loading it")
        previous = self._state
        self._load_tokens()
        if previous == State.AUTH_REQUIRED and self._tokens is not None:
            _LOG.info("recovered: a new login was stored")
            self._check_due = Deadline.after(0.0, self._clock)
        self._publish_token()
        self._publish_health()

    def _schedule_refresh(self, tokens: Tokens) -> None:
        due = refresh_at(
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            early=self._agent.refresh_early_seconds,
        )
        self._refresh_due = Deadline.at_wall(due, self._clock)

    def _refresh(self, reason: str) -> bool:
        """One call to Spotify; True when a new token was stored and published."""
        tokens = self._tokens
        if tokens is None:
            self._refresh_due = None
            return False
        _LOG.info("refreshing the access token (%s)", reason)
        started_wall = self._clock.wall()
        try:
            grant = self._spotify.refresh(tokens.refresh_token)
        except TransientError as err:
            self._retry_later(err, err.retry_after)
            return False
        except AuthRejected as err:
            self._refresh_due = None
            self._set_state(State.AUTH_REQUIRED, f"Spotify refused the refresh token: {err}")
            self._publish_health()
            return False
        except ClientRejected as err:
            self._refresh_due = Deadline.after(self._agent.max_backoff, self._clock)
            self._set_state(State.ERROR, str(err))
            self._publish_health()
            return False
        except SpotifyError as err:
            self._retry_later(err, None)
            return False
        finally:
            self._gate.attempted(started_wall=started_wall, ended=self._clock.monotonic())
        self._accept(grant, tokens)
        return True

    def _accept(self, grant: TokenGrant, previous: Tokens) -> None:
        now = self._clock.wall()
        tokens = Tokens(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token or previous.refresh_token,
            expires_at=now + grant.expires_in,
            scope=grant.scope or previous.scope,
            issued_at=now,
            authorized_at=previous.authorized_at,
        )
        self._tokens = tokens
        try:
            self._store.save(tokens)  # the rotated refresh token is on disk before publishing
        except (StoreError, OSError) as err:
            _LOG.error("cannot write the new tokens to %s: %s", self._store.state_dir, err)
            self._set_state(State.ERROR, f"cannot write the state directory: {err}")
            self._refresh_due = Deadline.after(self._agent.max_backoff, self._clock)
            self._publish_health()
            return
        self._tokens_signature = self._store.tokens_signature()
        self._failures = 0
        self._last_refresh = now
        self._schedule_refresh(tokens)
        self._set_state(State.OK, "token refreshed")
        self._save_session(last_refresh=now)
        _LOG.info("new access token valid for %d s", grant.expires_in)
        self._publish_token()
        self._publish_health()

    def _retry_later(self, err: TokendError, retry_after: float | None) -> None:
        delay = retry_delay(
            self._failures, cap=self._agent.max_backoff, rng=self._rng, retry_after=retry_after
        )
        self._failures += 1
        self._refresh_due = Deadline.after(delay, self._clock)
        if retry_after is not None:
            self._gate.hold(until=self._clock.monotonic() + retry_after)
        tokens = self._tokens
        valid = tokens is not None and tokens.seconds_left(self._clock.wall()) > 0
        state = State.RETRYING if valid else State.ERROR
        self._set_state(state, f"refresh failed ({err}); retrying in {delay:.0f} s")
        _LOG.warning("refresh failed (%s); attempt %d, next in %.1f s", err, self._failures, delay)
        self._publish_health()

    def _check(self) -> None:
        self._check_due = Deadline.after(self._agent.check_interval, self._clock)
        tokens = self._tokens
        if tokens is None:
            self._publish_health()
            return
        if tokens.seconds_left(self._clock.wall()) <= 0:
            if self._refresh_due is None and self._state != State.AUTH_REQUIRED:
                self._refresh("token expired")
            elif self._state == State.RETRYING:
                self._set_state(State.ERROR, "the token expired while Spotify was unreachable")
            self._publish_token()
            self._publish_health()
            return
        try:
            profile = self._spotify.me(tokens.access_token)
        except AccessTokenRejected:
            _LOG.warning("Spotify refused the current access token; refreshing now")
            self._refresh("access token refused")
        except TokendError as err:
            _LOG.warning("health check could not reach Spotify: %s", err)
        else:
            user = profile.get("display_name") or profile.get("id")
            if isinstance(user, str) and user != self._user:
                self._user = user
                self._save_session(display_name=user, user_id=profile.get("id"))
        self._publish_health()

    def _save_session(self, **changes: Any) -> None:
        session = self._store.load_session() | changes
        try:
            self._store.save_session(session)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the session record: %s", err)

    # ---- requests ---------------------------------------------------------------------

    def _handle_request(self, request: Request) -> None:
        message = request.message
        verb = self._topics.verb_of(message.topic)
        if message.retain or verb is None:
            return  # a retained command is stale by definition
        reply = Reply(
            topic=message.response_topic or self._topics.response(verb),
            correlation_data=message.correlation_data,
        )
        try:
            body = parse_request(message.payload)
        except RequestError as err:
            self._respond(reply, ok=False, error=str(err))
            return
        transaction = body.get("transaction")
        if verb not in REQUEST_VERBS:
            known = ", ".join(sorted(REQUEST_VERBS))
            self._respond(
                reply,
                ok=False,
                error=f"unknown verb {verb!r}; use one of {known}",
                transaction=transaction,
            )
            return
        if verb == "refresh":
            self._request_refresh(request, body, reply)
        elif verb == "check":
            self._check()
            self._respond(reply, ok=True, data=self._health().to_payload(), transaction=transaction)
        elif verb == "status":
            self._respond(reply, ok=True, data=self._health().to_payload(), transaction=transaction)
        else:
            self._respond(
                reply,
                ok=False,
                transaction=transaction,
                error="authorization over MQTT is not available yet; run mqtt-tokend auth",
            )

    def _request_refresh(self, request: Request, body: dict[str, Any], reply: Reply) -> None:
        transaction = body.get("transaction")
        tokens = self._tokens
        if tokens is None or self._state == State.AUTH_REQUIRED:
            self._respond(
                reply,
                ok=False,
                error=self._message,
                transaction=transaction,
                data=self._health().to_payload(),
            )
            return
        if self._gate.should_call(request, body, tokens, now=self._clock.monotonic()):
            self._refresh(str(body.get("reason") or "requested"))
        refreshed = self._tokens is not tokens
        ok = self._tokens is not None and self._state in (State.OK, State.RETRYING)
        data = {"refreshed": refreshed} | self._health().to_payload()
        self._respond(
            reply, ok=ok, data=data, transaction=transaction, error=None if ok else self._message
        )

    def _respond(
        self,
        reply: Reply,
        *,
        ok: bool,
        data: dict[str, Any] | None = None,
        error: str | None = None,
        transaction: Any = None,
    ) -> None:
        payload = response_payload(ok=ok, data=data, error=error, transaction=transaction)
        self._publisher.publish(reply.topic, json.dumps(payload), retain=False, reply=reply)

    # ---- publishing -------------------------------------------------------------------

    def _set_state(self, state: State, message: str) -> None:
        if state != self._state:
            _LOG.info("state %s -> %s: %s", self._state.value, state.value, message)
        self._state = state
        self._message = message

    def _health(self) -> Health:
        tokens = self._tokens
        human = self._state == State.AUTH_REQUIRED
        config_path = str(self._config.path) if self._config.path else None
        return Health(
            state=self._state,
            message=self._message,
            checked_at=self._clock.wall(),
            expires_at=tokens.expires_at if tokens else None,
            last_refresh=self._last_refresh,
            next_refresh=self._refresh_due.wall if self._refresh_due else None,
            consecutive_failures=self._failures,
            instructions=auth_instructions(config_path) if human else None,
            user=self._user,
        )

    def _publish_all(self) -> None:
        self._publisher.publish(self._topics.availability, ONLINE, retain=True)
        self._publish_token()
        self._publish_health()

    def _publish_token(self) -> None:
        tokens = self._tokens
        now = self._clock.wall()
        if tokens is None or tokens.seconds_left(now) <= 0:
            self._publisher.publish(self._topics.token, b"", retain=True)  # clears the retained
            return
        plain = token_plaintext(
            access_token=tokens.access_token,
            scope=tokens.scope,
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            kind=TOKEN_KIND_USER,
        )
        expiry = math.ceil(tokens.seconds_left(now))
        self._publisher.publish(
            self._topics.token, self._cipher.encrypt_json(plain), retain=True, expiry=expiry
        )
        _LOG.info("published the token on %s (expires in %d s)", self._topics.token, expiry)

    def _publish_health(self) -> None:
        payload = self._health().to_payload()
        self._publisher.publish(self._topics.health, json.dumps(payload), retain=True)
        try:
            self._store.save_status(payload)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the status file: %s", err)

    def final_messages(self) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        health = replace(self._health(), message="agent stopped")
        return [
            (self._topics.health, json.dumps(health.to_payload()).encode()),
            (self._topics.availability, OFFLINE.encode()),
        ]
