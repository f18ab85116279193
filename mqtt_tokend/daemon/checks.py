"""The keeper's periodic work: verify the token with Spotify, the devices, the reminders,
and a wall clock that jumps (a Pi without an RTC meeting NTP)."""

from __future__ import annotations

import logging
from dataclasses import replace

from mqtt_tokend.adapters.store import Tokens
from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.health import reauth_deadline
from mqtt_tokend.contract.wording import user_name
from mqtt_tokend.core.timing import Clock, Deadline
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.snapshot import Retained, StepLog
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.errors import AccessTokenRejected, TokendError

_LOG = logging.getLogger(__name__)

CLOCK_JUMP_SECONDS = 2.0  # a larger disagreement between wall and monotonic time is a jump


class SessionChecks:
    """The checks part of `SessionKeeper`, which owns the state named here."""

    _settings: AgentConfig
    _files: TokenFiles
    _spotify: SpotifyPort
    _devices: DeviceWatch
    _clock: Clock
    _tokens: Tokens | None
    _login_rejected: bool
    _user: str | None
    _refresh_due: Deadline | None
    _check_due: Deadline
    _wall_offset: float
    _expires_mono: float | None
    _step: StepLog

    def _refresh(self, reason: str) -> bool:
        raise NotImplementedError

    def _save(self, tokens: Tokens) -> bool:
        raise NotImplementedError

    def _schedule_refresh(self, tokens: Tokens) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        self._check_due = Deadline.after(self._settings.check_interval, self._clock)
        tokens = self._tokens
        now = self._clock.wall()
        if tokens is not None and not self._login_rejected:
            if tokens.expires_at <= now:
                if self._refresh_due is None:
                    self._refresh("token expired")
            else:
                self._verify(tokens)
        self._devices.check_player()
        warn_days = self._settings.reauth_warn_days
        if self._files.reminder_due(now, self._reauth_by(), warn_days=warn_days):
            self._step.reauth_reminder = True
        self._step.changed.add(Retained.HEALTH)

    def _verify(self, tokens: Tokens) -> None:
        try:
            profile = self._spotify.me(tokens.access_token)
        except AccessTokenRejected:
            _LOG.warning("Spotify refused the current access token; refreshing now")
            self._refresh("access token refused")
            return
        except TokendError as err:
            _LOG.warning("health check could not reach Spotify: %s", err)
            return
        user = user_name(profile)
        if user is not None and user != self._user:
            self._user = user
            self._files.update_session(display_name=user, user_id=profile.get("id"))
        self._fetch_devices()

    def _fetch_devices(self) -> None:
        if self._tokens is not None:
            devices = self._devices.fetch(self._tokens.access_token)
            self._step.devices = devices if devices is not None else self._step.devices

    def _reauth_by(self) -> float | None:
        tokens = self._tokens
        authorized = tokens.authorized_at if tokens else None
        return reauth_deadline(authorized, max_age_days=self._settings.refresh_token_max_age_days)

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
            self._step.changed.add(Retained.USER_TOKEN)
        else:
            self._check_due = Deadline.after(0.0, self._clock)  # ask Spotify, not the clock
        if self._tokens is not None and not self._login_rejected:
            self._schedule_refresh(self._tokens)
