"""Re-authorization over MQTT: the agent offers a URL, takes the redirect on `request/auth`.

A pasted redirect is accepted only with the state of the login the agent itself offered,
within PENDING_MAX_AGE. The offer is spent only by a successful login: a wrong state, a junk
code, an `error=` or a code Spotify refuses all leave it standing, so the owner's real
redirect still works after any number of hostile pastes. Every refusal is one sentence
(wording.REFUSED), whatever was wrong, so a reply tells nothing about the state. Spotify is asked to
exchange at most EXCHANGE_BURST codes at once per offer, then one per EXCHANGE_REFILL seconds;
a paste beyond that is refused without a call.

The login in progress is kept in the agent's memory only, so it never collides with a
`mqtt-tokend auth` run at the same time (whichever finishes first wins; the agent notices a
login stored by the CLI through the token file).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mqtt_tokend.adapters import login as auth
from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.contract.wording import REFUSED
from mqtt_tokend.core.gate import TokenBucket
from mqtt_tokend.core.oauth import code_from_redirect
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.snapshot import Snapshot
from mqtt_tokend.errors import AuthRejected, InputError, TokendError

_LOG = logging.getLogger(__name__)

MAX_REDIRECT_BYTES = 4096
EXCHANGE_BURST = 3  # codes with the offered state that Spotify is asked about at once
EXCHANGE_REFILL = 10.0  # seconds for each further one


class LoginRefused(InputError):
    """A pasted login was not accepted; its message is REFUSED, whatever the reason."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


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
        self._exchanges = TokenBucket(burst=EXCHANGE_BURST, refill=EXCHANGE_REFILL, now=now())

    def __repr__(self) -> str:
        return f"RemoteLogin(offered={self._pending is not None})"

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
            logsafe.remember(pending.state, pending.url)
            self._pending = pending
            self._exchanges = TokenBucket(
                burst=EXCHANGE_BURST, refill=EXCHANGE_REFILL, now=self._now()
            )
        return pending.url

    def withdraw(self) -> None:
        """No login is needed any more."""
        self._pending = None

    def with_offer(self, snapshot: Snapshot) -> Snapshot:
        """Offer a login where the step found the stored one rejected, withdraw it once one
        works again; the snapshot comes back carrying the URL offered (renewed when stale)."""
        for happening in snapshot.happenings:
            if happening.login_rejected:
                self.offer()
            elif happening.recovered:
                self.withdraw()
        return replace(snapshot, login_url=self.current() if snapshot.login_rejected else None)

    def finish(self, payload: bytes) -> dict[str, Any]:
        """Complete the offered login with the redirect URL; return the user's profile.

        Every refusal is LoginRefused; the offer stands unless the login succeeded.
        """
        pending = self._pending
        if pending is None or len(payload) > MAX_REDIRECT_BYTES:
            raise LoginRefused()
        if self._now() - pending.created_at > auth.PENDING_MAX_AGE:
            self.offer()  # a fresh URL for whoever may see it
            raise LoginRefused()
        try:
            text = payload.decode("utf-8")
            code = code_from_redirect(text, expected_state=pending.state, bare_code=False)
        except AuthRejected as err:  # `error=` with the offered state: the owner said no
            _LOG.info("Spotify reported %s for the offered login; it stays offered", err.error)
            raise LoginRefused() from None
        except (TokendError, ValueError):  # ValueError: not UTF-8, or no URL at all
            raise LoginRefused() from None
        if not self._exchanges.take(self._now()):
            raise LoginRefused()  # Spotify was asked about enough codes for now
        try:
            profile = auth.complete(
                pending, code, spotify=self._spotify, store=self._store, now=self._now
            )
        except TokendError as err:
            _LOG.warning(
                "a code for the offered login was not accepted (%s); it stays offered", err
            )
            raise LoginRefused() from None
        self._pending = None
        return profile
