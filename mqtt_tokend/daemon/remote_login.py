"""Re-authorization over MQTT: the agent offers a URL, takes the redirect on `request/auth`.

A pasted redirect is accepted only with the state of the login the agent itself offered,
within PENDING_MAX_AGE, and once: the first paste carrying that state uses the offer up,
whether Spotify then accepts its code or not, and a fresh offer (new state) takes its place.
So a wrong code costs at most one Spotify call per offer, and a bare code is refused.

The login in progress is kept in the agent's memory only, so it never collides with a
`mqtt-tokend auth` run at the same time (whichever finishes first wins; the agent notices a
login stored by the CLI through the token file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqtt_tokend.adapters import login as auth
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.errors import InputError

MAX_REDIRECT_BYTES = 4096


class RemoteLogin:
    """One authorization URL at a time, and finishing it from a pasted redirect URL."""

    def __init__(
        self,
        *,
        spotify: SpotifyPort,
        config: SpotifyConfig,
        store: TokenStore,
        now: Callable[[], float],
    ) -> None:
        self._spotify = spotify
        self._config = config
        self._store = store
        self._now = now
        self._pending: auth.Authorization | None = None

    @property
    def url(self) -> str | None:
        """The URL to open, while a login is offered."""
        return self._pending.url if self._pending else None

    def current(self) -> str | None:
        """The URL of the offered login, renewed first when it has grown too old; None when
        no login is offered."""
        if self._pending is None:
            return None
        return self.offer()

    def offer(self) -> str:
        """A fresh authorization URL (new state and PKCE verifier), unless a recent one stands."""
        pending = self._pending
        if pending is None or self._now() - pending.created_at > auth.PENDING_MAX_AGE:
            pending = auth.begin(self._spotify, self._config, now=self._now())
            self._pending = pending
        return pending.url

    def withdraw(self) -> None:
        """No login is needed any more."""
        self._pending = None

    def finish(self, payload: bytes) -> dict[str, Any]:
        """Complete the offered login with the redirect URL; return the user's profile."""
        if self._pending is None:
            raise InputError(
                "no login is pending: the agent is logged in (a login address pasted again "
                "was already used)"
            )
        if len(payload) > MAX_REDIRECT_BYTES:
            raise InputError("the pasted text is too long to be a redirect URL")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the pasted text is not UTF-8") from None
        pending = self._pending
        if self._now() - pending.created_at > auth.PENDING_MAX_AGE:
            self.offer()  # a fresh URL for whoever may see it
            raise InputError("that login is too old: open the newest login link and try again")
        used = self._store.load_session().get("used_login")
        code = auth.code_from_redirect(
            text, expected_state=pending.state, used_state=used, bare_code=False
        )
        self._pending = None  # this offer is used up, whatever Spotify says about the code
        try:
            return auth.complete(
                pending, code, spotify=self._spotify, store=self._store, now=self._now
            )
        except Exception:
            self.offer()
            raise
