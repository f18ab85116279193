"""Fault injection: what to break, on which endpoint, how many times, in FIFO order."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from mqtt_tokend.dev.emulator.webapi import API_ENDPOINTS

FAULT_KINDS = ("status", "rate_limit", "delay", "drop", "garbage", "truncated", "trickle")
ENDPOINTS = ("token", "authorize", *API_ENDPOINTS)
FAULT_ENDPOINTS = (*ENDPOINTS, "any")


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; see `SpotifyEmulator.inject` for the kinds."""

    kind: str
    endpoint: str = "token"
    count: int | None = 1
    status: int = 503
    retry_after: float = 1.0
    delay: float = 1.0  # "delay": before answering; "trickle": between two bytes

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if self.endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"fault endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        if self.count is not None and (not _is_int(self.count) or self.count < 1):
            raise ValueError("fault count must be a positive integer or None (until cleared)")
        if not _is_int(self.status) or not 400 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP error status, 400 to 599")
        for name, value in (("retry_after", self.retry_after), ("delay", self.delay)):
            if not _is_number(value) or value < 0:
                raise ValueError(f"fault {name} must be a non-negative number of seconds")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class _Pending:
    fault: Fault
    remaining: int | None


class FaultQueue:
    """Pending faults; the first one that matches an endpoint is used (and counted down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault behind those already pending."""
        with self._lock:
            self._pending.append(_Pending(fault, fault.count))

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def take(self, endpoint: str) -> Fault | None:
        """The fault to apply to this request, if any, counting it down."""
        with self._lock:
            for index, pending in enumerate(self._pending):
                if pending.fault.endpoint not in (endpoint, "any"):
                    continue
                if pending.remaining is not None:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        del self._pending[index]
                return pending.fault
        return None
