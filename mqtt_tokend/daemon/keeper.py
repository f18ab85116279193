"""The session keeper: the tokens, the store and Spotify, and the state they put us in.

Each public step returns a `Snapshot` of what it wrote to disk before returning, so nothing
can publish a token a crash would lose. Deadlines are monotonic; a jump of the wall clock
(a Pi without an RTC meeting NTP) re-evaluates expiry instead of trusting them.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from mqtt_tokend import errors
from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.spotify import TokenGrant
from mqtt_tokend.adapters.store import Tokens
from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.health import State, retry_after_until
from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome, rejected_sha256, token_sha256
from mqtt_tokend.contract.wording import CLIENT_FIX, LOGIN_ENDED
from mqtt_tokend.core.gate import RefreshGate
from mqtt_tokend.core.statemachine import Event, Facts, transition
from mqtt_tokend.core.timing import Clock, Deadline, refresh_at, retry_delay
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.checks import SessionChecks
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.snapshot import Happening, Retained, ServedToken, Snapshot, StepLog
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.errors import AuthRejected, ClientRejected, TokendError

_LOG = logging.getLogger(__name__)

LOGIN_POLL_SECONDS = 2.0  # how often to look for a new login while one is needed
SAVE_RETRY_SECONDS = 10.0  # how often to try the state directory again once it failed
STATE_MESSAGES = {
    State.DEGRADED: "no valid user token; the app token is served",
    State.ERROR: "no valid token: Spotify has not answered",
    State.AUTH_REQUIRED: "the login has expired",
}


class SessionKeeper(SessionChecks):
    """Owns the Spotify session: refresh, recovery, verification and the state machine."""

    def __init__(
        self,
        *,
        settings: AgentConfig,
        files: TokenFiles,
        spotify: SpotifyPort,
        app: AppTokenKeeper,
        devices: DeviceWatch,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._files = files
        self._spotify = spotify
        self._app = app
        self._devices = devices
        self._clock = clock
        self._rng = rng or random.Random()
        self._tokens: Tokens | None = None
        self._state = State.STARTING
        self._message = "starting"
        self._login_rejected = False
        self._failures = 0
        self._backup_tried = False
        self._user: str | None = None
        self._last_refresh: float | None = None
        self._gate = RefreshGate(min_interval=settings.min_refresh_interval)
        self._refresh_due: Deadline | None = None
        self._check_due = Deadline.after(0.0, clock)
        self._wall_offset = clock.wall() - clock.monotonic()
        self._expires_mono: float | None = None  # expiry of a token obtained by this process
        self._step = StepLog()  # what happened since the last snapshot
        self._unsaved: Tokens | None = None  # a rotation the state directory did not take
        self._retry_after: float | None = None  # wall end of Spotify's Retry-After

    @property
    def state(self) -> State:
        """The current health state."""
        return self._state

    @property
    def tokens(self) -> Tokens | None:
        """The user's tokens in use."""
        return self._tokens

    def start(self) -> Snapshot:
        """Read the session record and the stored login."""
        session = self._files.load_session()
        self._user = session.get("display_name") or session.get("user_id")
        last = session.get("last_refresh")
        self._last_refresh = float(last) if isinstance(last, int | float) else None
        self._load_tokens(Event.LOADED)
        until = self._files.retry_after_until(self._clock.wall())
        if until is not None:
            self._hold(until)
        return self._handover()

    def run_due(self) -> Snapshot:
        """Whatever is due: a changed file, a refresh, the app token, a check, expiry."""
        self._watch_clock()
        self._pick_up_changes()
        if self._due(self._refresh_due):
            self._refresh("scheduled")
        tokens, wall = self._tokens, self._clock.wall()
        unusable = self._login_rejected or tokens is None or tokens.expires_at <= wall
        if self._app.follow(needed=self._app.possible and unusable):  # degraded mode
            self._step.changed.add(Retained.APP_TOKEN)
        if self._due(self._check_due):
            self._check()
        self._apply(Event.TICK)
        return self._handover()

    def check(self) -> Snapshot:
        """Verify the token with Spotify, refresh the devices, the player and the reminders."""
        self._check()
        return self._handover()

    def refresh_requested(
        self, request: Request, body: dict[str, Any]
    ) -> tuple[RefreshOutcome, Snapshot | None]:
        """A consumer asked for a refresh: call Spotify if the gate allows (then the snapshot)."""
        tokens = self._tokens
        if tokens is None or self._login_rejected:
            return RefreshOutcome(refreshed=False, reason=NotRefreshed.NO_LOGIN), None
        verdict = self._gate.verdict(
            received=request.received,
            rejected=rejected_sha256(body),
            current=token_sha256(tokens.access_token),
            token_issued_at=tokens.issued_at,
            now=self._clock.monotonic(),
        )
        if verdict.call:
            self._refresh(str(body.get("reason") or "requested"))
        if self._tokens is not tokens:
            return RefreshOutcome(refreshed=True), self._handover()
        outcome = self._gate.not_refreshed(verdict, now=Deadline.after(0.0, self._clock))
        return outcome, self._handover() if verdict.call else None

    def snapshot(self) -> Snapshot:
        """What is true now, without acting."""
        return self._handover()

    def seconds_until_next_deadline(self) -> float:
        """How long the loop may sleep before something is due."""
        deadlines = [self._check_due, self._refresh_due, self._app.due]
        waits = [d.remaining(self._clock) for d in deadlines if d is not None]
        if self._login_rejected or self._tokens is None:
            waits.append(LOGIN_POLL_SECONDS)
        for expiry in (self._tokens.expires_at if self._tokens else None, self._app.expires_at):
            if expiry is not None and expiry > self._clock.wall():
                waits.append(expiry - self._clock.wall())  # the state changes when it expires
        return max(0.0, min(waits))

    def _due(self, deadline: Deadline | None) -> bool:
        return deadline is not None and deadline.remaining(self._clock) <= 0

    # ---- tokens on disk ---------------------------------------------------------------

    def _load_tokens(self, event: Event) -> None:
        self._expires_mono = None
        try:
            tokens = self._files.load()
        except (errors.StoreError, errors.CryptoError) as err:
            self._tokens = None
            self._login_rejected = True
            self._apply(Event.LOADED, str(err))
            return
        self._tokens = tokens
        self._login_rejected = tokens is None
        self._backup_tried = False
        if tokens is None:
            self._apply(event, "no Spotify login stored yet")
            return
        logsafe.remember(tokens.access_token, tokens.refresh_token)
        self._failures = 0
        self._schedule_refresh(tokens)
        self._check_due = Deadline.after(0.0, self._clock)  # verify what was loaded
        valid = tokens.seconds_left(self._clock.wall()) > 0
        self._apply(event, "login loaded" if valid else "stored token has expired; refreshing")

    def _pick_up_changes(self) -> None:
        """A login stored by `auth` (or the dashboard), or a rotated key file."""
        if self._files.key_rotated():
            if self._tokens is not None:
                self._save(self._tokens)  # with the new primary key
            else:  # perhaps the key that reads the stored login was put back
                self._load_tokens(Event.LOGIN_STORED)
            self._step.changed.add(Retained.EVERYTHING)
        if self._files.login_changed():
            _LOG.info("the token file changed (a new login?); loading it")
            self._load_tokens(Event.LOGIN_STORED)
            self._step.changed |= {Retained.USER_TOKEN, Retained.HEALTH}

    def _save(self, tokens: Tokens) -> bool:
        """Write the tokens; on failure keep them to save again, and call Spotify no more."""
        error = self._files.save(tokens)
        self._unsaved = tokens if error is not None else None
        if error is not None:
            self._write_failed(error)
        return error is None

    def _write_failed(self, error: str) -> None:
        where = self._files.state_dir
        self._refresh_due = Deadline.after(SAVE_RETRY_SECONDS, self._clock)
        self._apply(
            Event.WRITE_FAILED,
            f"cannot write the state directory {where} ({error}): free space there or fix its "
            f"permissions; the current token is still served, and Spotify is not called until "
            f"the login can be saved (tried again every {SAVE_RETRY_SECONDS:.0f} s)",
        )
        self._step.changed.add(Retained.HEALTH)

    def _disk_ready(self) -> bool:
        """No call that may rotate the refresh token while the last rotation is not on disk."""
        unsaved = self._unsaved
        if unsaved is not None:
            if self._save(unsaved):
                self._schedule_refresh(unsaved)
                self._apply(Event.REFRESHED, "the state directory is writable again")
                self._step.changed |= {Retained.USER_TOKEN, Retained.HEALTH}
            return False
        problem = self._files.reserve()
        if problem is not None:
            self._write_failed(problem)
        return problem is None

    # ---- refreshing -------------------------------------------------------------------

    def _schedule_refresh(self, tokens: Tokens) -> None:
        due = refresh_at(
            expires_at=tokens.expires_at,
            issued_at=tokens.issued_at,
            early=self._settings.refresh_early_seconds,
        )
        self._refresh_due = Deadline.at_wall(due, self._clock)

    def _refresh(self, reason: str) -> bool:
        """One call to Spotify; True when a new token was stored."""
        tokens = self._tokens
        if tokens is None or self._login_rejected:
            self._refresh_due = None
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
            self._refresh_due = Deadline.after(self._settings.max_backoff, self._clock)
            self._apply(Event.CLIENT_REJECTED, f"{err}: {CLIENT_FIX}")
            return False
        except TokendError as err:
            self._retry_later(err, None)
            return False
        finally:
            self._files.release()
            ended = self._clock.monotonic()
            self._gate.attempted(started_wall=started, ended=ended, succeeded=grant is not None)
        return self._accept(grant, tokens)

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
        self._tokens = tokens  # in memory even if the disk fails: it may be the only copy
        if self._retry_after is not None:
            self._retry_after = None
            self._files.update_session(retry_after_until=None)
        if not self._save(tokens):  # the rotated refresh token is on disk before publishing
            return False
        self._expires_mono = self._clock.monotonic() + grant.expires_in
        self._failures = 0
        self._backup_tried = False
        self._last_refresh = now
        self._schedule_refresh(tokens)
        self._files.update_session(last_refresh=now)
        _LOG.info("new access token valid for %d s", grant.expires_in)
        self._apply(Event.REFRESHED, "token refreshed")
        self._step.changed |= {Retained.USER_TOKEN, Retained.HEALTH}
        self._fetch_devices()
        return True

    def _rejected(self, err: AuthRejected, tokens: Tokens) -> bool:
        """invalid_grant: try the backup's refresh token once, then ask a person."""
        if not self._backup_tried:
            self._backup_tried = True
            backup = self._files.load_backup()
            if backup is not None and backup.refresh_token != tokens.refresh_token:
                _LOG.warning("the refresh token was refused; trying the backup's once")
                self._tokens = backup
                return self._refresh("backup refresh token")
        self._refresh_due = None
        self._login_rejected = True
        _LOG.warning("Spotify refused the refresh token: %s", err)
        self._apply(Event.GRANT_REJECTED, LOGIN_ENDED)
        self._step.changed.add(Retained.HEALTH)
        return False

    def _retry_later(self, err: TokendError, retry_after: float | None) -> None:
        delay = retry_delay(
            self._failures, cap=self._settings.max_backoff, rng=self._rng, retry_after=retry_after
        )
        self._failures += 1
        self._refresh_due = Deadline.after(delay, self._clock)
        if retry_after is not None:
            until = retry_after_until(self._clock.wall(), retry_after)
            self._files.update_session(retry_after_until=until)
            self._hold(until)
        _LOG.warning("refresh failed (%s); attempt %d, next in %.1f s", err, self._failures, delay)
        self._apply(Event.TRANSIENT_FAILURE, f"refresh failed ({err}); retrying in {delay:.0f} s")
        self._step.changed.add(Retained.HEALTH)

    def _hold(self, until: float) -> None:
        """Spotify asked us to wait until `until` (wall time): no refresh call before."""
        self._retry_after = until
        due = Deadline.at_wall(until, self._clock)
        self._gate.hold(until=due.monotonic)
        if self._refresh_due is None or self._refresh_due.monotonic < due.monotonic:
            self._refresh_due = due

    # ---- the state machine and the snapshot -------------------------------------------

    def _facts(self) -> Facts:
        return Facts(
            now=self._clock.wall(),
            expires_at=self._tokens.expires_at if self._tokens else None,
            app_expires_at=self._app.expires_at,
            login_rejected=self._login_rejected,
        )

    def _apply(self, event: Event, message: str | None = None) -> None:
        state = transition(self._state, event, self._facts())
        if message is None and state != self._state:
            message = STATE_MESSAGES.get(state, self._message)
        if state != self._state:
            _LOG.info("state %s -> %s: %s", self._state.value, state.value, message)
        changed = state != self._state or (message is not None and message != self._message)
        self._state = state
        self._message = message or self._message
        now = self._clock.wall()
        self._step.happenings.append(Happening(event, self._message, now, self._login_rejected))
        if changed:  # every change of state or message is published at once
            self._step.changed.add(Retained.HEALTH)
        if changed and event == Event.TICK:
            self._step.changed.add(Retained.USER_TOKEN)

    def _handover(self) -> Snapshot:
        """The snapshot of now, with what happened since the last one (then forgotten)."""
        step, self._step = self._step, StepLog()
        return Snapshot(
            now=self._clock.wall(),
            state=self._state,
            message=self._message,
            cipher=self._files.cipher,
            user_token=ServedToken.of(self._tokens),
            app_token=self._app.token,
            login_rejected=self._login_rejected,
            failures=self._failures,
            next_refresh=self._refresh_due.wall if self._refresh_due else None,
            retry_after_until=self._retry_after,
            last_refresh=self._last_refresh,
            user=self._user,
            reauth_by=self._reauth_by(),
            player=self._devices.player,
            devices=tuple(step.devices) if step.devices is not None else None,
            happenings=tuple(step.happenings),
            reauth_reminder=step.reauth_reminder,
            changed=frozenset(step.changed),
        )
