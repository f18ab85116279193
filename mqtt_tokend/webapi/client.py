"""`SpotifyClient`: the Web API for consumers, with the agent's token and its recovery rules.

One persistent HTTP session; the user's token from a `TokenConsumer`. A 401 is reported to the
agent (`rejected`, with the token's SHA-256) and the call is retried once with the new token;
a 429 is waited out (Retry-After, capped, shared by every call of the client); a 5xx or a lost
connection is retried a few times with jittered backoff; catalog calls use the app token while
the user's login waits for a person; everything else becomes a `WebApiError` that says what
to do.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from mqtt_tokend.adapters.mqtt import MqttLink
from mqtt_tokend.config import Config
from mqtt_tokend.consumer import Token, TokenConsumer
from mqtt_tokend.errors import TokendError, TransientError
from mqtt_tokend.webapi.errors import (
    LoginNeeded,
    RateLimited,
    RequestRefused,
    SpotifyUnavailable,
    TokenRejected,
    TokenUnavailable,
)
from mqtt_tokend.webapi.feed import shared_link
from mqtt_tokend.webapi.health import HealthView, Login
from mqtt_tokend.webapi.policy import RetryPolicy, app_token_allowed, retry_after
from mqtt_tokend.webapi.transport import Reply, Transport

_LOG = logging.getLogger(__name__)

SPOTIFY_API = "https://api.spotify.com"
IDEMPOTENT = frozenset(("GET", "PUT", "DELETE", "HEAD"))
HEALTH_WAIT = 2.0  # at start, how long a call waits for the retained health record
TOKEN_SLICE = 0.25  # while waiting for a token, how often the health record is looked at again


class SpotifyClient:
    """Spotify's Web API with the agent's tokens. Thread-safe; `close()` (or `with`) when done.

    `SpotifyClient.connect(config)` builds everything from a loaded config (or broker and key
    file keywords, as `TokenConsumer` takes them). The parts can be passed in instead:
    `user` (the token consumer), `app` (a consumer of `<base>/token/app`, for catalog calls
    while the login waits for a person), `health` (the agent's health record).
    """

    def __init__(
        self,
        *,
        user: TokenConsumer,
        app: TokenConsumer | None = None,
        health: HealthView | None = None,
        api_url: str = SPOTIFY_API,
        policy: RetryPolicy | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._user = user
        self._app = app
        self._health = health
        self._transport = transport or Transport(
            api_url=api_url, timeout=self.policy.request_timeout
        )
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        self._blocked_until = 0.0  # monotonic: no request before this (a 429's Retry-After)
        self._link: MqttLink | None = None  # set by `connect`, which owns the connection

    @classmethod
    def connect(
        cls,
        config: Config | None = None,
        *,
        app: bool = True,
        api_url: str | None = None,
        policy: RetryPolicy | None = None,
        **consumer: Any,
    ) -> SpotifyClient:
        """A started client for `config` (its broker, key file and `spotify.api_url`); keywords
        as `TokenConsumer` takes them override the config. One MQTT connection carries the
        user token, the app token and the health record."""
        user = TokenConsumer(config, **consumer)
        app_consumer = TokenConsumer(config, app=True, **consumer) if app else None
        health = HealthView(user.mqtt)
        parts = [user, app_consumer] if app_consumer is not None else [user]
        receivers = {part.topic: part.receive for part in parts}
        receivers[health.topic] = health.receive
        link = shared_link(user.mqtt, receivers)
        for part in parts:
            part.attach(link)
        link.start()
        url = api_url or (config.spotify.api_url if config is not None else SPOTIFY_API)
        made = cls(user=user, app=app_consumer, health=health, api_url=url, policy=policy)
        made._link = link
        return made

    def close(self) -> None:
        """Disconnect from the broker and close the HTTP session."""
        if self._link is not None:
            self._link.stop()  # the consumers' shared connection (from `connect`)
        else:
            for part in (self._user, self._app, self._health):
                if part is not None:
                    part.stop()
        self._transport.close()

    def __enter__(self) -> SpotifyClient:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _v: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the calls ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Call `method path` ("/v1/..."); the JSON answer, or None for an empty one."""
        method = method.upper()
        server_retries = rate_retries = 0
        healed = False
        while True:
            self._wait_out_rate_limit(path)
            token, kind = self._token(method, path)
            reply: Reply | None = None
            try:
                reply = self._transport.send(
                    method, path, authorization=token.authorization, params=params, body=body
                )
                failure = f"HTTP {reply.status}"
            except TransientError as err:
                failure = str(err)
            if reply is not None and reply.status < 300:
                return reply.body
            if reply is not None and reply.status == 401:
                if healed:
                    raise TokenRejected(
                        f"Spotify refused {path} with the token the agent refreshed for it too; "
                        "see `mqtt-tokend status` (is the agent logged in to this account?)",
                        path=path,
                        status=401,
                    )
                healed = True
                self._rejected(token, kind, path)
                continue
            if reply is not None and reply.status == 429:
                wait = self._rate_limited(reply, path)
                if rate_retries >= self.policy.rate_limit_retries:
                    raise RateLimited(path=path, retry_after=wait)
                rate_retries += 1
                continue
            if reply is not None and reply.status < 500:
                raise RequestRefused(path=path, status=reply.status, message=reply.error_message())
            if method not in IDEMPOTENT or server_retries >= self.policy.server_retries:
                tries = "1 try" if server_retries == 0 else f"{server_retries + 1} tries"
                raise SpotifyUnavailable(
                    f"Spotify's Web API failed {path} ({failure}) after {tries}; try again in "
                    "a minute (`mqtt-tokend status` shows whether the agent still reaches "
                    "Spotify)",
                    path=path,
                    status=reply.status if reply is not None else None,
                )
            pause = self.policy.backoff(server_retries, self._rng)
            _LOG.info("%s %s: %s; retrying in %.2f s", method, path, failure, pause)
            server_retries += 1
            self._sleep(pause)

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` with query parameters."""
        return self.request("GET", path, params=params or None)

    def put(self, path: str, body: Any = None, **params: Any) -> Any:
        """PUT `path` with a JSON body and query parameters."""
        return self.request("PUT", path, params=params or None, body=body)

    def me(self) -> dict[str, Any]:
        """The user's profile."""
        result: dict[str, Any] = self.get("/v1/me")
        return result

    def devices(self) -> list[dict[str, Any]]:
        """The account's Spotify Connect devices."""
        found = self.get("/v1/me/player/devices") or {}
        devices: list[dict[str, Any]] = found.get("devices", [])
        return devices

    def playback(self) -> dict[str, Any] | None:
        """What plays where (None when nothing does)."""
        state: dict[str, Any] | None = self.get("/v1/me/player")
        return state

    def play(self, *, device_id: str | None = None, uris: list[str] | None = None) -> None:
        """Start or resume playback (on `device_id`; `uris` to play these tracks)."""
        params = {"device_id": device_id} if device_id else {}
        self.put("/v1/me/player/play", {"uris": uris} if uris else None, **params)

    def pause(self, *, device_id: str | None = None) -> None:
        """Pause playback."""
        params = {"device_id": device_id} if device_id else {}
        self.put("/v1/me/player/pause", **params)

    def search(self, q: str, *, type: str = "track", limit: int = 10) -> dict[str, Any]:
        """Search the catalog (the app token serves it while the login waits for a person)."""
        found: dict[str, Any] = self.get("/v1/search", q=q, type=type, limit=limit)
        return found

    # ---- tokens ------------------------------------------------------------------------------

    def _login(self) -> Login:
        if self._health is None:
            return Login(None)
        return self._health.login(wait=HEALTH_WAIT)

    def _token(self, method: str, path: str) -> tuple[Token, str]:
        """The token for this call and its kind ("user" or "app")."""
        deadline = self._clock() + self.policy.token_timeout
        while not (login := self._login()).no_user_token:
            # Short waits, so a login that ends meanwhile (health auth_required) is seen at once.
            left = deadline - self._clock()
            try:
                return self._user.token(timeout=max(0.0, min(TOKEN_SLICE, left))), "user"
            except TokendError as err:
                if self._clock() >= deadline:
                    raise TokenUnavailable(
                        f"no token from the agent for {path}: {err}", path=path
                    ) from err
        held = self._user.current()
        if held is not None:
            return held, "user"  # the last token still works until it expires
        if self._app is not None and app_token_allowed(method, path):
            try:
                return self._app.token(timeout=self.policy.token_timeout), "app"
            except TokendError as err:
                _LOG.warning("no app token either for %s: %s", path, err)
        if login.needs_person:
            raise LoginNeeded(path=path, instructions=login.instructions, state=str(login.state))
        raise TokenUnavailable(
            f"the agent has no user token for {path} ({login.state}: {login.message}); "
            "`mqtt-tokend status` says why",
            path=path,
        )

    def _rejected(self, token: Token, kind: str, path: str) -> None:
        """Tell the agent Spotify refused `token`; the next `_token` waits for its successor."""
        consumer = self._app if kind == "app" and self._app is not None else self._user
        sent = consumer.report_rejected(token)
        _LOG.info("Spotify answered 401 to %s; %s", path, "reported" if sent else "not reported")

    # ---- rate limits -------------------------------------------------------------------------

    def _rate_limited(self, reply: Reply, path: str) -> float:
        """Note a 429's wait for every call of this client; RateLimited when it is too long."""
        wait = retry_after(reply.headers.get("Retry-After"))
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + wait)
        if wait > self.policy.retry_after_cap:
            raise RateLimited(path=path, retry_after=wait)
        _LOG.info("Spotify rate-limits %s: waiting %.1f s", path, wait)
        return wait

    def _wait_out_rate_limit(self, path: str) -> None:
        with self._lock:
            left = self._blocked_until - self._clock()
        if left > self.policy.retry_after_cap:
            raise RateLimited(path=path, retry_after=left)
        if left > 0:
            self._sleep(left)
