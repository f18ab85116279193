"""The user's token session: the stored login, refreshing it with Spotify, and saving each
rotation before anything is published.

Every event goes to the state record as it happens; a refresh that stores a new token also
fetches the account's devices with it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from typing import Any

from mqtt_tokend import errors
from mqtt_tokend.adapters import logsafe
from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.tokens import TokenGrant, Tokens
from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome, rejected_sha256, token_sha256
from mqtt_tokend.contract.wording import CLIENT_FIX, LOGIN_ENDED
from mqtt_tokend.core.gate import RefreshGate
from mqtt_tokend.core.statemachine import Event
from mqtt_tokend.core.timing import Clock, Deadline, refresh_at, retry_after_until, retry_delay
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.record import StateRecord
from mqtt_tokend.daemon.snapshot import Retained
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.errors import AuthRejected, ClientRejected, TokendError

_LOG = logging.getLogger(__name__)

SAVE_RETRY_SECONDS = 10.0  # how often to try the state directory again once it failed


class TokenSession:
    """The user's tokens: loaded, refreshed when due or asked for, saved before publishing."""

    def __init__(
        self,
        *,
        settings: AgentConfig,
        files: TokenFiles,
        spotify: SpotifyPort,
        devices: DeviceWatch,
        record: StateRecord,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._files = files
        self._spotify = spotify
        self._devices = devices
        self._record = record
        self._clock = clock
        self._rng = rng or random.Random()
        self.tokens: Tokens | None = None
        self.login_rejected = False
        self.failures = 0
        self._backup_tried = False
        self.last_refresh: float | None = None
        self._gate = RefreshGate(min_interval=settings.min_refresh_interval)
        self.refresh_due: Deadline | None = None
        self._expires_mono: float | None = None  # expiry of a token obtained by this process
        self._unsaved: Tokens | None = None  # a rotation the state directory did not take
        self.retry_after: float | None = None  # wall end of Spotify's Retry-After

    @property
    def usable(self) -> bool:
        """A login that is not refused (its access token may still have expired)."""
        return self.tokens is not None and not self.login_rejected

    def apply(self, event: Event, message: str | None = None) -> None:
        """Tell the state record of an event, with the user's token as it stands now."""
        self._record.apply(
            event,
            message,
            expires_at=self.tokens.expires_at if self.tokens else None,
            login_rejected=self.login_rejected,
        )

    def start(self, last_refresh: float | None) -> bool:
        """Load the stored login and any Retry-After still in force; True when there is a
        login to verify."""
        self.last_refresh = last_refresh
        loaded = self.load(Event.LOADED)
        until = self._files.retry_after_until(self._clock.wall())
        if until is not None:
            self._hold(until)
        return loaded

    def load(self, event: Event) -> bool:
        """Read the stored login; True when there is one to verify."""
        self._expires_mono = None
        try:
            tokens = self._files.load()
        except (errors.StoreError, errors.CryptoError) as err:
            self.tokens = None
            self.login_rejected = True
            self.apply(Event.LOADED, str(err))
            return False
        self.tokens = tokens
        self.login_rejected = tokens is None
        self._backup_tried = False
        if tokens is None:
            self.apply(event, "no Spotify login stored yet")
            return False
        logsafe.remember(tokens.access_token, tokens.refresh_token)
        self.failures = 0
        self.schedule_refresh(tokens)
        valid = tokens.seconds_left(self._clock.wall()) > 0
        self.apply(event, "login loaded" if valid else "stored token has expired; refreshing")
        return True

    def pick_up_changes(self) -> bool:
        """A login stored by `auth` (or the dashboard), or a rotated key file; True when a
        login was loaded that should be verified."""
        loaded = False
        if self._files.key_rotated():
            if self.tokens is not None:
                self.save(self.tokens)  # with the new primary key
            else:  # perhaps the key that reads the stored login was put back
                loaded = self.load(Event.LOGIN_STORED)
            self._record.changed(Retained.EVERYTHING)
        if self._files.login_changed():
            _LOG.info("the token file changed (a new login?); loading it")
            loaded = self.load(Event.LOGIN_STORED) or loaded
            self._record.changed(Retained.USER_TOKEN, Retained.HEALTH)
        return loaded

    def save(self, tokens: Tokens) -> bool:
        """Write the tokens; on failure keep them to save again, and call Spotify no more."""
        error = self._files.save(tokens)
        self._unsaved = tokens if error is not None else None
        if error is not None:
            self._write_failed(error)
        return error is None

    def _write_failed(self, error: str) -> None:
        where = self._files.state_dir
        self.refresh_due = Deadline.after(SAVE_RETRY_SECONDS, self._clock)
        self.apply(
            Event.WRITE_FAILED,
            f"cannot write the state directory {where} ({error}): free space there or fix its "
            f"permissions; the current token is still served, and Spotify is not called until "
            f"the login can be saved (tried again every {SAVE_RETRY_SECONDS:.0f} s)",
        )
        self._record.changed(Retained.HEALTH)

    def _disk_ready(self) -> bool:
        """No call that may rotate the refresh token while the last rotation is not on disk."""
        unsaved = self._unsaved
        if unsaved is not None:
            if self.save(unsaved):
                self.schedule_refresh(unsaved)
                self.apply(Event.REFRESHED, "the state directory is writable again")
                self._record.changed(Retained.USER_TOKEN, Retained.HEALTH)
            return False
        problem = self._files.reserve()
        if problem is not None:
            self._write_failed(problem)
        return problem is None

    def clock_jumped(self) -> bool:
        """Re-place the expiry after a jump of the wall clock; False when only Spotify knows it."""
        tokens = self.tokens
        if tokens is not None and self._expires_mono is not None:
            # Obtained by this process: its lifetime is known on the monotonic clock.
            expires_at = self._clock.wall() + (self._expires_mono - self._clock.monotonic())
            shift = expires_at - tokens.expires_at
            self.tokens = replace(tokens, expires_at=expires_at, issued_at=tokens.issued_at + shift)
            self.save(self.tokens)
            self._record.changed(Retained.USER_TOKEN)
            known = True
        else:
            known = False
        if self.usable and self.tokens is not None:
            self.schedule_refresh(self.tokens)
        return known

    # ---- refreshing -------------------------------------------------------------------

    def schedule_refresh(self, tokens: Tokens) -> None:
        """The next refresh: a little before the token expires."""
        due = refresh_at(
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            early=self._settings.refresh_early_seconds,
        )
        self.refresh_due = Deadline.at_wall(due, self._clock)

    def requested(self, request: Request, body: dict[str, Any]) -> tuple[RefreshOutcome, bool]:
        """A consumer asked for a refresh: call Spotify if the gate allows; the outcome, and
        whether Spotify was called."""
        tokens = self.tokens
        if tokens is None or self.login_rejected:
            return RefreshOutcome(refreshed=False, reason=NotRefreshed.NO_LOGIN), False
        verdict = self._gate.verdict(
            received=request.received,
            rejected=rejected_sha256(body),
            current=token_sha256(tokens.access_token),
            token_issued_at=tokens.issued_at,
            now=self._clock.monotonic(),
        )
        if verdict.call:
            self.refresh(str(body.get("reason") or "requested"))
        if self.tokens is not tokens:
            return RefreshOutcome(refreshed=True), True
        outcome = self._gate.not_refreshed(verdict, now=Deadline.after(0.0, self._clock))
        return outcome, verdict.call

    def refresh(self, reason: str) -> bool:
        """One call to Spotify; True when a new token was stored."""
        tokens = self.tokens
        if tokens is None or self.login_rejected:
            self.refresh_due = None
            return False
        if not self._disk_ready():
            return False
        _LOG.info("refreshing the access token (%s)", reason)
        started = self._clock.wall()
        grant: TokenGrant | None = None
        try:
            grant = self._spotify.refresh(tokens.refresh_token)
        except errors.TransientError as err:
            self._retry_later(err, err.retry_after)
            return False
        except AuthRejected as err:
            return self._rejected(err, tokens)
        except ClientRejected as err:
            self.refresh_due = Deadline.after(self._settings.max_backoff, self._clock)
            self.apply(Event.CLIENT_REJECTED, f"{err}: {CLIENT_FIX}")
            return False
        except TokendError as err:
            self._retry_later(err, None)
            return False
        finally:
            self._files.release()
            ended = self._clock.monotonic()
            self._gate.attempted(started_wall=started, ended=ended, succeeded=grant is not None)
        return self._accept(grant, tokens)

    def fetch_devices(self) -> None:
        """The account's devices, with the token in use."""
        if self.tokens is not None:
            self._record.devices_fetched(self._devices.fetch(self.tokens.access_token))

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
        self.tokens = tokens  # in memory even if the disk fails: it may be the only copy
        if self.retry_after is not None:
            self.retry_after = None
            self._files.remember_retry_after(None)
        if not self.save(tokens):  # the rotated refresh token is on disk before publishing
            return False
        self._expires_mono = self._clock.monotonic() + grant.expires_in
        self.failures = 0
        self._backup_tried = False
        self.last_refresh = now
        self.schedule_refresh(tokens)
        self._files.update_session(last_refresh=now)
        _LOG.info("new access token valid for %d s", grant.expires_in)
        self.apply(Event.REFRESHED, "token refreshed")
        self._record.changed(Retained.USER_TOKEN, Retained.HEALTH)
        self.fetch_devices()
        return True

    def _rejected(self, err: AuthRejected, tokens: Tokens) -> bool:
        """invalid_grant: try the backup's refresh token once, then ask a person."""
        if not self._backup_tried:
            self._backup_tried = True
            backup = self._files.load_backup()
            if backup is not None and backup.refresh_token != tokens.refresh_token:
                _LOG.warning("the refresh token was refused; trying the backup's once")
                self.tokens = backup
                return self.refresh("backup refresh token")
        self.refresh_due = None
        self.login_rejected = True
        _LOG.warning("Spotify refused the refresh token: %s", err)
        self.apply(Event.GRANT_REJECTED, LOGIN_ENDED)
        self._record.changed(Retained.HEALTH)
        return False

    def _retry_later(self, err: TokendError, retry_after: float | None) -> None:
        delay = retry_delay(
            self.failures, cap=self._settings.max_backoff, rng=self._rng, retry_after=retry_after
        )
        self.failures += 1
        self.refresh_due = Deadline.after(delay, self._clock)
        if retry_after is not None:
            until = retry_after_until(self._clock.wall(), retry_after)
            self._files.remember_retry_after(until)
            self._hold(until)
        _LOG.warning("refresh failed (%s); attempt %d, next in %.1f s", err, self.failures, delay)
        self.apply(Event.TRANSIENT_FAILURE, f"refresh failed ({err}); retrying in {delay:.0f} s")
        self._record.changed(Retained.HEALTH)

    def _hold(self, until: float) -> None:
        """Spotify asked us to wait until `until` (wall time): no refresh call before."""
        self.retry_after = until
        due = Deadline.at_wall(until, self._clock)
        self._gate.hold(until=due.monotonic)
        if self.refresh_due is None or self.refresh_due.monotonic < due.monotonic:
            self.refresh_due = due
