"""The agent's loop: one thread feeds the keeper and hands each snapshot to the sinks.

MQTT callbacks only put items into the inbox; the loop waits on it with a timeout that is
the time left until the keeper's next deadline (refresh, retry, app token, check), so
nothing is polled. The keeper writes to disk before it returns; only then do the sinks run.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mqtt_tokend.adapters.store import Tokens
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.wire import RefreshOutcome
from mqtt_tokend.core.gate import Throttle
from mqtt_tokend.daemon.answers import RequestHandler
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Connected, InboxItem, Request, Stop
from mqtt_tokend.daemon.keeper import SessionKeeper
from mqtt_tokend.daemon.remote_login import RemoteLogin
from mqtt_tokend.daemon.sinks import Sinks
from mqtt_tokend.daemon.snapshot import Retained

_LOG = logging.getLogger(__name__)

BIRTH_COALESCE = 5.0  # seconds: Home Assistant births this close together announce once


class Agent:
    """Serves the inbox: requests are answered, due work is done, results are published."""

    def __init__(
        self,
        *,
        keeper: SessionKeeper,
        sinks: Sinks,
        login: RemoteLogin,
        mqtt: Broadcaster,
        inbox: queue.Queue[InboxItem],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keeper = keeper
        self._sinks = sinks
        self._login = login
        self._inbox = inbox
        self._answers = RequestHandler(self, mqtt, now=now)
        self._births = Throttle(BIRTH_COALESCE)

    @property
    def state(self) -> State:
        """The current health state."""
        return self._keeper.state

    @property
    def tokens(self) -> Tokens | None:
        """The user's tokens in use."""
        return self._keeper.tokens

    def run(self) -> None:
        """Serve until a Stop item arrives."""
        self.start()
        while True:
            try:
                item = self._inbox.get(timeout=self.seconds_until_next_deadline())
            except queue.Empty:
                item = None
            if isinstance(item, Stop):
                return
            self.step(item)

    def start(self) -> None:
        """Load the stored login (nothing is published before the broker accepts us)."""
        self._sinks.feed(self._keeper.start())

    def step(self, item: InboxItem | None = None) -> None:
        """Handle one item (or none) and whatever is due: the loop body."""
        broker = self._sinks.broker
        if broker is not None and broker.follow():  # reached or lost: health says so now
            self._sinks.feed(replace(self._keeper.snapshot(), changed=frozenset({Retained.HEALTH})))
        if isinstance(item, Connected):
            self._sinks.announce(self._keeper.snapshot())
        elif isinstance(item, Request) and self._sinks.is_birth(item.message):
            if self._births.allow(item.received):  # discovery is retained: once is enough
                _LOG.info("Home Assistant (re)started; publishing discovery again")
                self._sinks.announce(self._keeper.snapshot())
        elif isinstance(item, Request):
            self._answers.handle(item)
        self._sinks.feed(self._keeper.run_due())

    def seconds_until_next_deadline(self) -> float:
        """How long the loop may wait for the inbox before something is due."""
        wait = self._keeper.seconds_until_next_deadline()
        broker = self._sinks.broker
        due = broker.seconds_until_due() if broker is not None else None
        return wait if due is None else min(wait, due)

    def final_messages(self) -> list[tuple[str, bytes]]:
        """What to publish on a clean stop: offline, and the health record saying so."""
        return self._sinks.final_messages(self._keeper.snapshot())

    # ---- what answering needs (answers.Session) -------------------------------------------

    def health_payload(self) -> dict[str, Any]:
        """The health record as of now."""
        return self._sinks.health(self._keeper.snapshot()).to_payload()

    def check(self) -> None:
        """Verify the session with Spotify now, and publish the result."""
        self._sinks.feed(self._keeper.check())

    def refresh_on_request(self, request: Request, body: dict[str, Any]) -> RefreshOutcome:
        """Refresh if the gate allows: a new token, or why not and when the next may be made."""
        outcome, snapshot = self._keeper.refresh_requested(request, body)
        if snapshot is not None:  # Spotify was called
            self._sinks.feed(snapshot)
        return outcome

    def finish_login(self, payload: bytes) -> dict[str, Any]:
        """Complete the offered login; the keeper picks up the stored tokens in this step."""
        return self._login.finish(payload)

    def login_refused(self) -> None:
        """A pasted login was refused: an alert while a login is offered; health is untouched."""
        if self._login.url is not None:
            snapshot = self._keeper.snapshot()
            self._sinks.feed(snapshot)  # whatever the keeper noted since the last step
            self._sinks.login_failed(snapshot.now)
