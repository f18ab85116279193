"""Telling a person: the notice, the alerts and the login link, from the moment they must act
until it is over, and the reminders before Spotify ends a login."""

from __future__ import annotations

import logging
from pathlib import Path

from mqtt_tokend.adapters import notice_file
from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import reauth_warnings_due
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.remote_login import RemoteLogin

_LOG = logging.getLogger(__name__)

CLIENT_FIX = "Fix spotify.client_id / spotify.client_secret in the config, then restart the agent."


class People:
    """Keeps the notice file, the alerts and the offered login in step with the problem."""

    def __init__(
        self,
        *,
        out: Broadcaster,
        state_dir: Path,
        login: RemoteLogin,
        instructions: str,
        warn_days: tuple[float, ...],
    ) -> None:
        self._out = out
        self._state_dir = state_dir
        self._login = login
        self.instructions = instructions
        self._warn_days = warn_days
        self.current: Alert | None = None  # the problem a person is told about right now
        self.reminded: set[float] = set()  # reauth_soon thresholds already announced

    def must_log_in(self, message: str, now: float) -> None:
        """The login is unusable: a person must run `auth` (or paste one into the dashboard)."""
        self._login.offer()
        self._raise(Alert(notices.AUTH_REQUIRED, message, now, self.instructions))

    def client_rejected(self, message: str, now: float) -> None:
        """Spotify refused the client id or secret: the configuration must be fixed."""
        self._raise(Alert(notices.CLIENT_REJECTED, message, now, CLIENT_FIX))

    def recovered(self, message: str, now: float) -> None:
        """Whatever a person was asked to do is done: clear the notice, say so once."""
        if self.current is None:
            return
        self.current = None
        self._login.withdraw()
        notice_file.clear_notice(self._state_dir)
        self._out.alert(Alert(notices.RECOVERED, f"recovered: {message}", now))

    def remind(self, now: float, reauth_by: float | None) -> bool:
        """A `reauth_soon` alert at each threshold before `reauth_by`; True when one was sent."""
        due = reauth_warnings_due(now, reauth_by, warn_days=self._warn_days, sent=self.reminded)
        if not due or reauth_by is None:
            return False
        self.reminded.update(due)
        days = max(0.0, (reauth_by - now) / 86400)
        message = f"Spotify ends this login in {days:.1f} days; log in again before then"
        self._out.alert(Alert(notices.REAUTH_SOON, message, now, self.instructions))
        return True

    def _raise(self, problem: Alert) -> None:
        if self.current is not None and self.current.event == problem.event:
            return  # already told
        self.current = problem
        try:
            notice_file.write_notice(self._state_dir, problem)
        except OSError as err:
            _LOG.warning("cannot write the notice file: %s", err)
        self._out.alert(problem)
