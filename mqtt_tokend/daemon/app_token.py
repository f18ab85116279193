"""The app token: with a client secret, a client-credentials token keeps the player's basic
functions while the user's login is unusable (`degraded`)."""

from __future__ import annotations

import logging

from mqtt_tokend.adapters import logsafe
from mqtt_tokend.core.timing import Clock, Deadline, refresh_at
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.snapshot import ServedToken
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)


class AppTokenKeeper:
    """Fetches, refreshes and withdraws the app token; the MQTT sink publishes it."""

    def __init__(
        self,
        *,
        spotify: SpotifyPort,
        clock: Clock,
        early: float,
        retry: float,
    ) -> None:
        self._spotify = spotify
        self._clock = clock
        self._early = early
        self._retry = retry
        self.token: ServedToken | None = None  # a client-credentials token (no user)
        self.due: Deadline | None = None  # the next fetch

    @property
    def possible(self) -> bool:
        """Only a confidential client (one with a secret) can have an app token."""
        return self._spotify.confidential

    @property
    def expires_at(self) -> float | None:
        """When the app token expires, if there is one."""
        return self.token.expires_at if self.token else None

    def update(self, *, needed: bool) -> bool:
        """Fetch when first needed or due, withdraw when no longer needed; True when changed."""
        due = self.due is not None and self.due.remaining(self._clock) <= 0
        if due or (self.due is None) == needed:
            return self.keep(needed=needed)
        return False

    def keep(self, *, needed: bool) -> bool:
        """Fetch or refresh it while `needed`, withdraw it when not; True when it changed."""
        if not needed:
            if self.token is None:
                return False
            _LOG.info("the user's token is back; withdrawing the app token")
            self.token, self.due = None, None
            return True
        try:
            grant = self._spotify.client_credentials()
        except TokendError as err:
            _LOG.warning("no app token either: %s", err)
            self.due = Deadline.after(self._retry, self._clock)
            return False
        now = self._clock.wall()
        logsafe.remember(grant.access_token)
        self.token = ServedToken(grant.access_token, grant.scope, now, now + grant.expires_in)
        due = refresh_at(expires_at=self.token.expires_at, issued_at=now, early=self._early)
        self.due = Deadline.at_wall(due, self._clock)
        return True
