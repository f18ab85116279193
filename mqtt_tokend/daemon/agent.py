"""The agent: one step feeds the keeper and hands each snapshot to the sinks.

A request is decided by the handler (`answers`), carried out here, then answered by the
handler; nothing below calls back up. The keeper writes to disk before it returns; only then
do the sinks run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.core.gate import Throttle
from mqtt_tokend.daemon.answers import Decision, Done, RequestHandler, Work
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.broker_watch import BrokerWatch
from mqtt_tokend.daemon.inbox import Connected, InboxItem, Request
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.daemon.sinks import Sinks
from mqtt_tokend.daemon.snapshot import Retained, Snapshot
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)

BIRTH_COALESCE = 5.0  # seconds: Home Assistant births this close together announce once


class Agent:
    """Serves one inbox item at a time: requests are answered, due work is done, results are
    published."""

    def __init__(
        self,
        *,
        keeper: SessionKeeper,
        sinks: Sinks,
        login: RemoteLogin,
        mqtt: Broadcaster,
        broker: BrokerWatch | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keeper = keeper
        self._sinks = sinks
        self._login = login
        self._broker = broker
        self._answers = RequestHandler(mqtt, now=now)
        self._births = Throttle(BIRTH_COALESCE)

    @property
    def state(self) -> State:
        """The current health state."""
        return self._keeper.state

    @property
    def tokens(self) -> Tokens | None:
        """The user's tokens in use."""
        return self._keeper.tokens

    def start(self) -> None:
        """Load the stored login (nothing is published before the broker accepts us)."""
        self._feed(self._keeper.start())

    def step(self, item: InboxItem | None = None) -> None:
        """Handle one item (or none) and whatever is due: the loop body."""
        broker = self._broker
        if broker is not None and broker.recheck():  # reached or lost: health says so now
            self._feed(replace(self._keeper.snapshot(), changed=frozenset({Retained.HEALTH})))
        if isinstance(item, Connected):
            self._sinks.announce(self._current())
        elif isinstance(item, Request) and self._sinks.is_birth(item.message):
            if self._births.allow(item.received):  # discovery is retained: once is enough
                _LOG.info("Home Assistant (re)started; publishing discovery again")
                self._sinks.announce(self._current())
        elif isinstance(item, Request):
            decision = self._answers.decide(item)
            if decision is not None:
                self._carry_out(decision)
        self._feed(self._keeper.run_due())

    def seconds_until_next_deadline(self) -> float:
        """How long the loop may wait for the inbox before something is due."""
        wait = self._keeper.seconds_until_next_deadline()
        broker = self._broker
        due = broker.seconds_until_due() if broker is not None else None
        return wait if due is None else min(wait, due)

    def final_messages(self) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        return self._sinks.final_messages(self._current())

    def _feed(self, snapshot: Snapshot) -> None:
        """Every snapshot reaches the sinks through here, with the remote login the agent
        offers (it alone holds the offer)."""
        self._sinks.feed(self._login.with_offer(snapshot))

    def _current(self) -> Snapshot:
        """The session as it stands, with the login offered."""
        return self._login.with_offer(self._keeper.snapshot())

    def _carry_out(self, decision: Decision) -> None:
        """Do what a request asks, then let the handler answer it."""
        if decision.work == Work.LOGIN:
            try:  # the keeper picks up the stored tokens at the end of this step
                profile = self._login.finish(decision.pasted)
            except TokendError:
                profile = None
            if self._answers.answer(decision, Done(profile=profile)):
                self._login_refused()
            return
        refreshed = None
        if decision.work == Work.CHECK:
            self._feed(self._keeper.check())
        elif decision.work == Work.REFRESH:
            refreshed, snapshot = self._keeper.refresh_requested(decision.request, decision.body)
            if snapshot is not None:  # Spotify was called
                self._feed(snapshot)
        snapshot = self._current()
        health = self._sinks.health(snapshot).to_payload()
        self._answers.answer(decision, Done(health=health, now=snapshot.now, refreshed=refreshed))

    def _login_refused(self) -> None:
        """A pasted login was refused: an alert while a login is offered; health is untouched."""
        if self._login.url is not None:
            snapshot = self._keeper.snapshot()
            self._feed(snapshot)  # whatever the keeper noted since the last step
            self._sinks.login_failed(snapshot.now)
