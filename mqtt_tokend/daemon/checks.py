"""The session's periodic checks: verify the token with Spotify, the devices, the player, the
re-login reminders, and a wall clock that jumps (a Pi without an RTC meeting NTP)."""

from __future__ import annotations

import logging

from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.wording import user_name
from mqtt_tokend.core.timing import Clock, Deadline, reauth_deadline
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.record import StateRecord
from mqtt_tokend.daemon.snapshot import Retained
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.daemon.token_session import TokenSession
from mqtt_tokend.errors import AccessTokenRejected, TokendError

_LOG = logging.getLogger(__name__)

CLOCK_JUMP_SECONDS = 2.0  # a larger disagreement between wall and monotonic time is a jump


class SessionChecks:
    """When the session is next verified, who the user is, and what each check found."""

    def __init__(
        self,
        *,
        settings: AgentConfig,
        session: TokenSession,
        files: TokenFiles,
        spotify: SpotifyPort,
        devices: DeviceWatch,
        record: StateRecord,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._session = session
        self._files = files
        self._spotify = spotify
        self._devices = devices
        self._record = record
        self._clock = clock
        self.user: str | None = None
        self.due = Deadline.after(0.0, clock)
        self._wall_offset = clock.wall() - clock.monotonic()

    def verify_soon(self) -> None:
        """A login was loaded: verify it in this step."""
        self.due = Deadline.after(0.0, self._clock)

    def check(self) -> None:
        """Verify the token (refresh an expired or refused one), the player and the reminders."""
        self.due = Deadline.after(self._settings.check_interval, self._clock)
        session = self._session
        tokens = session.tokens
        now = self._clock.wall()
        if tokens is not None and not session.login_rejected:
            if tokens.expires_at <= now:
                if session.refresh_due is None:
                    session.refresh("token expired")
            else:
                self._verify(tokens.access_token)
        self._devices.check_player()
        warn_days = self._settings.reauth_warn_days
        if self._files.reminder_due(now, self.reauth_by(), warn_days=warn_days):
            self._record.step.reauth_reminder = True
        self._record.changed(Retained.HEALTH)

    def _verify(self, access_token: str) -> None:
        try:
            profile = self._spotify.me(access_token)
        except AccessTokenRejected:
            _LOG.warning("Spotify refused the current access token; refreshing now")
            self._session.refresh("access token refused")
            return
        except TokendError as err:
            _LOG.warning("health check could not reach Spotify: %s", err)
            return
        user = user_name(profile)
        if user is not None and user != self.user:
            self.user = user
            self._files.update_session(display_name=user, user_id=profile.get("id"))
        self._session.fetch_devices()

    def reauth_by(self) -> float | None:
        """When Spotify ends the login in use (None when unknown)."""
        tokens = self._session.tokens
        authorized = tokens.authorized_at if tokens else None
        return reauth_deadline(authorized, max_age_days=self._settings.refresh_token_max_age_days)

    def watch_clock(self) -> None:
        """A jump of the wall clock re-places the expiry, or asks Spotify at once."""
        offset = self._clock.wall() - self._clock.monotonic()
        jump = offset - self._wall_offset
        if abs(jump) < CLOCK_JUMP_SECONDS:
            return
        self._wall_offset = offset
        _LOG.warning("the wall clock jumped by %+.0f s; re-evaluating expiry", jump)
        if not self._session.clock_jumped():
            self.verify_soon()  # ask Spotify, not the clock
