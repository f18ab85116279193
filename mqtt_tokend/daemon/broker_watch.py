"""The agent watching its own broker connection: consumers get their token through it, so a
broker the agent cannot reach is an error of health, not a line at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mqtt_tokend.contract.wording import broker_instructions

_LOG = logging.getLogger(__name__)

BROKER_GRACE_SECONDS = 10.0  # a reconnect (a broker restart) within this is not worth a word


class BrokerWatch:
    """Says, past a short grace, that the broker cannot be reached; and when it can again."""

    def __init__(
        self,
        *,
        connected: Callable[[], bool],
        last_error: Callable[[], str | None],
        where: str,
        config_path: str | None,
        monotonic: Callable[[], float],
        grace: float = BROKER_GRACE_SECONDS,
    ) -> None:
        self._connected = connected
        self._last_error = last_error
        self._where = where
        self._config_path = config_path
        self._monotonic = monotonic
        self._grace = grace
        self._down_since: float | None = monotonic()  # not connected yet
        self.problem: str | None = None  # what health says while the broker is unreachable

    @property
    def instructions(self) -> str:
        """What a person does about an unreachable broker."""
        return broker_instructions(self._config_path)

    def recheck(self) -> bool:
        """Look at the connection now; True when what health says about it changed."""
        now = self._monotonic()
        if self._connected():
            self._down_since = None
            if self.problem is None:
                return False
            _LOG.warning("the broker at %s can be reached again", self._where)
            self.problem = None
            return True
        if self._down_since is None:
            self._down_since = now
        if self.problem is not None or now - self._down_since < self._grace:
            return False
        why = self._last_error() or "no answer"
        self.problem = (
            f"cannot reach the MQTT broker at {self._where} ({why}), so no consumer can get "
            f"a token; the agent keeps trying"
        )
        _LOG.warning("%s. %s", self.problem, self.instructions)
        return True

    def seconds_until_due(self) -> float | None:
        """When the grace of a lost connection ends (None: nothing to wait for)."""
        if self._down_since is None or self.problem is not None:
            return None
        return max(0.0, self._down_since + self._grace - self._monotonic())
