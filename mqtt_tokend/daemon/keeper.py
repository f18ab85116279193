"""The session keeper: one step of the token session, its checks and the app token, handed
over as a snapshot.

Each public step returns a `Snapshot` of what it wrote to disk before returning, so nothing
can publish a token a crash would lose. Deadlines are monotonic; a jump of the wall clock
(a Pi without an RTC meeting NTP) re-evaluates expiry instead of trusting them.
"""

from __future__ import annotations

import random
from typing import Any

from mqtt_tokend.config import AgentConfig
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.wire import RefreshOutcome
from mqtt_tokend.core.statemachine import Event
from mqtt_tokend.core.timing import Clock, Deadline
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.checks import SessionChecks
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.daemon.record import StateRecord
from mqtt_tokend.daemon.snapshot import Retained, ServedToken, Snapshot
from mqtt_tokend.daemon.token_files import TokenFiles
from mqtt_tokend.daemon.token_session import TokenSession

LOGIN_POLL_SECONDS = 2.0  # how often to look for a new login while one is needed


class SessionKeeper:
    """Runs what is due on the token session, its checks and the app token; owns the record."""

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
        self._files = files
        self._app = app
        self._devices = devices
        self._clock = clock
        self._record = StateRecord(app=app, clock=clock)
        self._session = TokenSession(
            settings=settings,
            files=files,
            spotify=spotify,
            devices=devices,
            record=self._record,
            clock=clock,
            rng=rng,
        )
        self._checks = SessionChecks(
            settings=settings,
            session=self._session,
            files=files,
            spotify=spotify,
            devices=devices,
            record=self._record,
            clock=clock,
        )

    @property
    def state(self) -> State:
        """The current health state."""
        return self._record.state

    @property
    def tokens(self) -> Tokens | None:
        """The user's tokens in use."""
        return self._session.tokens

    def start(self) -> Snapshot:
        """Read the session record and the stored login."""
        session = self._files.load_session()
        self._checks.user = session.get("display_name") or session.get("user_id")
        last = session.get("last_refresh")
        if self._session.start(float(last) if isinstance(last, int | float) else None):
            self._checks.verify_soon()  # verify what was loaded
        return self._handover()

    def run_due(self) -> Snapshot:
        """Whatever is due: a changed file, a refresh, the app token, a check, expiry."""
        session = self._session
        self._checks.watch_clock()
        if session.pick_up_changes():
            self._checks.verify_soon()  # verify what was loaded
        if self._due(session.refresh_due):
            session.refresh("scheduled")
        tokens, wall = session.tokens, self._clock.wall()
        unusable = session.login_rejected or tokens is None or tokens.expires_at <= wall
        if self._app.update(needed=self._app.possible and unusable):  # degraded mode
            self._record.changed(Retained.APP_TOKEN)
        if self._due(self._checks.due):
            self._checks.check()
        session.apply(Event.TICK)
        return self._handover()

    def check(self) -> Snapshot:
        """Verify the token with Spotify, refresh the devices, the player and the reminders."""
        self._checks.check()
        return self._handover()

    def refresh_requested(
        self, request: Request, body: dict[str, Any]
    ) -> tuple[RefreshOutcome, Snapshot | None]:
        """A consumer asked for a refresh: call Spotify if the gate allows (then the snapshot)."""
        outcome, called = self._session.requested(request, body)
        return outcome, self._handover() if called else None

    def snapshot(self) -> Snapshot:
        """What is true now, without acting."""
        return self._handover()

    def seconds_until_next_deadline(self) -> float:
        """How long the loop may sleep before something is due."""
        session = self._session
        deadlines = [self._checks.due, session.refresh_due, self._app.due]
        waits = [d.remaining(self._clock) for d in deadlines if d is not None]
        if session.login_rejected or session.tokens is None:
            waits.append(LOGIN_POLL_SECONDS)
        expiries = (session.tokens.expires_at if session.tokens else None, self._app.expires_at)
        for expiry in expiries:
            if expiry is not None and expiry > self._clock.wall():
                waits.append(expiry - self._clock.wall())  # the state changes when it expires
        return max(0.0, min(waits))

    def _due(self, deadline: Deadline | None) -> bool:
        return deadline is not None and deadline.remaining(self._clock) <= 0

    def _handover(self) -> Snapshot:
        """The snapshot of now, with what happened since the last one (then forgotten)."""
        session, record = self._session, self._record
        step = record.handover()
        return Snapshot(
            now=self._clock.wall(),
            state=record.state,
            message=record.message,
            user_token=ServedToken.of(session.tokens),
            app_token=self._app.token,
            login_rejected=session.login_rejected,
            failures=session.failures,
            next_refresh=session.refresh_due.wall if session.refresh_due else None,
            retry_after_until=session.retry_after,
            last_refresh=session.last_refresh,
            user=self._checks.user,
            reauth_by=self._checks.reauth_by(),
            player=self._devices.player,
            devices=tuple(step.devices) if step.devices is not None else None,
            happenings=tuple(step.happenings),
            reauth_reminder=step.reauth_reminder,
            changed=frozenset(step.changed),
        )
