"""Telling a person: the notice, the alerts and the login link, from the moment they must act
until it is over, and the reminders before Spotify ends a login."""

from __future__ import annotations

import logging
from pathlib import Path

from mqtt_tokend.adapters import notice_file
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.contract.wording import CLIENT_FIX, REFUSED, REFUSED_FIX, login_ends_in
from mqtt_tokend.core.statemachine import Event
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.snapshot import Snapshot

_LOG = logging.getLogger(__name__)


class Notifier:
    """Keeps the notice file and the alerts in step with the problem (the login offered is
    the agent's: `RemoteLogin.with_offer`)."""

    def __init__(
        self,
        *,
        out: Broadcaster,
        state_dir: Path,
        instructions: str,
        client_instructions: str = CLIENT_FIX,
    ) -> None:
        self._out = out
        self._state_dir = state_dir
        self.instructions = instructions
        self.client_instructions = client_instructions
        self.current: Alert | None = None  # the problem a person is told about right now

    def follow(self, snapshot: Snapshot) -> None:
        """Replay the step's events: a person's part begins, changes or ends; reminders."""
        for happening in snapshot.happenings:
            if happening.login_rejected:
                self.must_log_in(happening.message, happening.at)
            elif happening.event == Event.CLIENT_REJECTED:
                self.client_rejected(happening.message, happening.at)
            elif happening.recovered:
                self.recovered(happening.message, happening.at)
        if snapshot.reauth_reminder and snapshot.reauth_by is not None:
            self.remind(snapshot.now, snapshot.reauth_by)

    def must_log_in(self, message: str, now: float) -> None:
        """The login is unusable: a person must run `auth` (or paste one into the dashboard)."""
        self._raise(Alert(notices.AUTH_REQUIRED, message, now, self.instructions))

    def client_rejected(self, message: str, now: float) -> None:
        """Spotify refused the client id or secret: the configuration must be fixed."""
        self._raise(Alert(notices.CLIENT_REJECTED, message, now, self.client_instructions))

    def recovered(self, message: str, now: float) -> None:
        """Whatever a person was asked to do is done: clear the notice, say so once."""
        if self.current is None:
            return
        self.current = None
        notice_file.clear_notice(self._state_dir)
        self._out.alert(Alert(notices.RECOVERED, f"recovered: {message}", now))

    def remind(self, now: float, reauth_by: float) -> None:
        """A `reauth_soon` alert: the keeper found a threshold before `reauth_by` crossed."""
        days = max(0.0, (reauth_by - now) / 86400)
        self._out.alert(Alert(notices.REAUTH_SOON, login_ends_in(days), now, self.instructions))

    def login_failed(self, now: float) -> None:
        """A pasted login was refused: say so where Home Assistant shows it, in words no
        paste can change."""
        self._out.alert(Alert(notices.AUTH_FAILED, REFUSED, now, REFUSED_FIX))

    def _raise(self, problem: Alert) -> None:
        if self.current is not None and self.current.event == problem.event:
            return  # already told
        self.current = problem
        try:
            notice_file.write_notice(self._state_dir, problem)
        except OSError as err:
            _LOG.warning("cannot write the notice file: %s", err)
        self._out.alert(problem)
