"""The app token: with a client secret, a client-credentials token keeps the player's basic
functions while the user's login is unusable (`degraded`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.core.timing import Clock, Deadline, refresh_at
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppToken:
    """A client-credentials token (no user)."""

    access_token: str
    scope: str
    issued_at: float
    expires_at: float


class AppTokenKeeper:
    """Fetches, refreshes, publishes and withdraws the app token on `<base>/token/app`."""

    def __init__(
        self,
        *,
        spotify: SpotifyClient,
        out: Broadcaster,
        clock: Clock,
        early: float,
        retry: float,
    ) -> None:
        self._spotify = spotify
        self._out = out
        self._clock = clock
        self._early = early
        self._retry = retry
        self.token: AppToken | None = None
        self.due: Deadline | None = None  # the next fetch

    @property
    def possible(self) -> bool:
        """Only a confidential client (one with a secret) can have an app token."""
        return self._spotify.confidential

    @property
    def expires_at(self) -> float | None:
        """When the app token expires, if there is one."""
        return self.token.expires_at if self.token else None

    def keep(self, *, needed: bool) -> bool:
        """Fetch or refresh it while `needed`, withdraw it when not; True when it changed."""
        if not needed:
            if self.token is None:
                return False
            _LOG.info("the user's token is back; withdrawing the app token")
            self.token, self.due = None, None
            self._out.token(kind="app", access_token=None, now=self._clock.wall())
            return True
        try:
            grant = self._spotify.client_credentials()
        except TokendError as err:
            _LOG.warning("no app token either: %s", err)
            self.due = Deadline.after(self._retry, self._clock)
            return False
        now = self._clock.wall()
        logsafe.remember(grant.access_token)
        self.token = AppToken(grant.access_token, grant.scope, now, now + grant.expires_in)
        due = refresh_at(expires_at=self.token.expires_at, issued_at=now, early=self._early)
        self.due = Deadline.at_wall(due, self._clock)
        self.publish()
        return True

    def publish(self) -> None:
        """The app token, retained and expiring with it (nothing while there is none)."""
        token = self.token
        if token is not None:
            self._out.token(
                kind="app",
                access_token=token.access_token,
                scope=token.scope,
                expires_at=token.expires_at,
                issued_at=token.issued_at,
                now=self._clock.wall(),
            )
