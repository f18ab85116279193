"""`SpotifyEmulator`: the Accounts service and Web API on a loopback port, in a daemon thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType

from mqtt_tokend.dev.emulator.accounts import SIX_MONTHS, Accounts, AuthorizeError
from mqtt_tokend.dev.emulator.faults import Fault, FaultQueue
from mqtt_tokend.dev.emulator.handler import EmulatorHandler
from mqtt_tokend.dev.emulator.httpd import Counters, EmulatorServer
from mqtt_tokend.dev.emulator.webapi import WebApi

_LOG = logging.getLogger(__name__)

# Fixed, public demo credentials: the emulator accepts them, Spotify never would.
DEMO_CLIENT_ID = "0d3c5a7e9b1f4e2a8c6d0b4f2e8a6c13"
DEMO_CONFIDENTIAL_CLIENT_ID = "7f2b9e4d1c8a4b6f9e3d5c7a1b0f8e24"
DEMO_CLIENT_SECRET = "c4e1a9f7d2b84e0c9a6f3d1b7e5c2a98"


__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_CONFIDENTIAL_CLIENT_ID",
    "AuthorizeError",
    "SpotifyEmulator",
]


class SpotifyEmulator:
    """Spotify's Accounts service and the Web API calls the agent uses, with fault injection."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 3600.0,
        refresh_token_max_age: float | None = SIX_MONTHS,
        revoke_on_refresh: bool = False,
        clients: Mapping[str, str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if clients is None:
            clients = {DEMO_CLIENT_ID: None, DEMO_CONFIDENTIAL_CLIENT_ID: DEMO_CLIENT_SECRET}
        self._host = host
        self._port = port
        self._accounts = Accounts(
            clients=clients,
            token_lifetime=token_lifetime,
            refresh_token_max_age=refresh_token_max_age,
            clock=clock,
        )
        self._accounts.revoke_on_refresh = revoke_on_refresh
        self._webapi = WebApi()
        self._faults = FaultQueue()
        self._counters = Counters()
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"SpotifyEmulator({where})"

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:PORT (for accounts_url and api_url alike)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host, port = self._server.server_name, self._server.server_port
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> SpotifyEmulator:
        """Listen and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = EmulatorServer(
            self._host,
            self._port,
            handler=EmulatorHandler,
            accounts=self._accounts,
            webapi=self._webapi,
            faults=self._faults,
            counters=self._counters,
        )
        self._thread = threading.Thread(
            target=server.serve_until_stopped, name="spotify-emulator", daemon=True
        )
        self._server = server
        self._thread.start()
        _LOG.debug("Spotify emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.wake()
        thread.join(timeout=5)
        server.server_close()
        server.close_connections()

    def __enter__(self) -> SpotifyEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def token_lifetime(self) -> float:
        """Seconds an access token issued from now on lives (expires_in)."""
        return self._accounts.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, value: float) -> None:
        self._accounts.token_lifetime = value

    def issued_secrets(self) -> list[str]:
        """Every authorization code, access token and refresh token handed out so far."""
        return self._accounts.issued_secrets()

    def live_refresh_tokens(self) -> set[str]:
        """Refresh tokens that would still be accepted."""
        return self._accounts.live_refresh_tokens()

    @property
    def rotate_refresh_tokens(self) -> bool:
        """PKCE refresh tokens are single-use and replaced on every refresh (the default)."""
        return self._accounts.rotate_refresh_tokens

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, value: bool) -> None:
        self._accounts.rotate_refresh_tokens = bool(value)

    @property
    def refresh_token_max_age(self) -> float | None:
        """Seconds after the user's authorization when refresh answers "Refresh token revoked"."""
        return self._accounts.refresh_token_max_age

    @refresh_token_max_age.setter
    def refresh_token_max_age(self, value: float | None) -> None:
        self._accounts.refresh_token_max_age = value

    def inject(
        self,
        kind: str,
        *,
        endpoint: str = "token",
        count: int | None = 1,
        status: int = 503,
        retry_after: float = 1.0,
        delay: float = 1.0,
    ) -> None:
        """Queue a fault for the next `count` matching requests (None: until cleared).

        Kinds: "status", "rate_limit", "delay", "drop", "garbage", "truncated", "trickle" (a
        503 sent one byte every `delay` seconds, as a stalled front end does); endpoints:
        one of FAULT_ENDPOINTS ("token", "authorize", a Web API endpoint) or "any". A faulted
        request still counts in `calls()`, and (but for "delay") changes no state: no code is
        used, no token rotated.
        """
        self._faults.add(Fault(kind, endpoint, count, status, retry_after, delay))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def revoke_all(self) -> None:
        """Revoke every refresh token and access token issued so far."""
        self._accounts.revoke_all()

    @property
    def revoke_on_refresh(self) -> bool:
        """Whether a refresh ends the login's older access tokens (they answer 401)."""
        return self._accounts.revoke_on_refresh

    @revoke_on_refresh.setter
    def revoke_on_refresh(self, value: bool) -> None:
        self._accounts.revoke_on_refresh = bool(value)

    def age_logins(self, seconds: float) -> None:
        """Make every login `seconds` older (past `refresh_token_max_age` it is ended)."""
        self._accounts.age_logins(seconds)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far count as expired."""
        self._accounts.expire_access_tokens()

    def calls(self, name: str) -> int:
        """Requests received: an endpoint ("token", "me", ...) or a grant type."""
        return self._counters.get(name)

    def reset_stats(self) -> None:
        """Zero every counter."""
        self._counters.reset()

    def authorize(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        state: str,
        scope: str = "",
        code_challenge: str | None = None,
    ) -> str:
        """What GET /authorize would redirect to (a user who approves at once).

        Raises AuthorizeError (a ValueError) where Spotify shows an error page.
        Faults do not apply here; the call counts as an "authorize" call.
        """
        self._counters.add("authorize")
        return self._accounts.authorize(
            client_id=client_id,
            redirect_uri=redirect_uri,
            state=state,
            scope=scope,
            response_type="code",
            code_challenge=code_challenge,
            code_challenge_method="S256" if code_challenge else None,
        )
