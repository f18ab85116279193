"""The session's state machine and what happened in the current step, until it is handed over."""

from __future__ import annotations

import logging

from mqtt_tokend.contract.health import State
from mqtt_tokend.core.statemachine import Event, Facts, transition
from mqtt_tokend.core.timing import Clock
from mqtt_tokend.daemon.app_token import AppTokenKeeper
from mqtt_tokend.daemon.snapshot import Happening, Retained, StepLog

_LOG = logging.getLogger(__name__)

STATE_MESSAGES = {
    State.DEGRADED: "no valid user token; the app token is served",
    State.ERROR: "no valid token: Spotify has not answered",
    State.AUTH_REQUIRED: "the login has expired",
}


class StateRecord:
    """The health state and its message, and the step's happenings and changed messages."""

    def __init__(self, *, app: AppTokenKeeper, clock: Clock) -> None:
        self._app = app
        self._clock = clock
        self.state = State.STARTING
        self.message = "starting"
        self.step = StepLog()  # what happened since the last snapshot

    def apply(
        self,
        event: Event,
        message: str | None = None,
        *,
        expires_at: float | None,
        login_rejected: bool,
    ) -> None:
        """Run the state machine on one event, given the user's token as it stands now."""
        facts = Facts(
            now=self._clock.wall(),
            expires_at=expires_at,
            app_expires_at=self._app.expires_at,
            login_rejected=login_rejected,
        )
        state = transition(self.state, event, facts)
        if message is None and state != self.state:
            message = STATE_MESSAGES.get(state, self.message)
        if state != self.state:
            _LOG.info("state %s -> %s: %s", self.state.value, state.value, message)
        changed = state != self.state or (message is not None and message != self.message)
        self.state = state
        self.message = message or self.message
        now = self._clock.wall()
        self.step.happenings.append(Happening(event, self.message, now, login_rejected))
        if changed:  # every change of state or message is published at once
            self.step.changed.add(Retained.HEALTH)
        if changed and event == Event.TICK:
            self.step.changed.add(Retained.USER_TOKEN)

    def changed(self, *retained: Retained) -> None:
        """Retained messages this step changed."""
        self.step.changed.update(retained)

    def devices_fetched(self, devices: list[dict[str, object]] | None) -> None:
        """The account's devices, when they could be fetched in this step."""
        if devices is not None:
            self.step.devices = devices

    def handover(self) -> StepLog:
        """What happened since the last handover (then forgotten)."""
        step, self.step = self.step, StepLog()
        return step
