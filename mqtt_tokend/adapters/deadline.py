"""An overall deadline for one HTTP call: its connections are cut when the time is up.

`requests` times each read, not the call: a server sending one byte a second holds a call
for as long as it likes. `call_deadline` starts a timer for the call on this thread; the
connection classes in `WATCHED_POOLS` register with it, and when the timer fires their
sockets are shut down, so the blocked read returns at once with an error.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class CallDeadline:
    """The connections one call uses; all cut (shut down) once the call's deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self.expired = False

    def watch(self, connection: HTTPConnection) -> None:
        """Cut `connection` when the deadline passes (at once if it has)."""
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                _cut(connection)

    def expire(self) -> None:
        """The deadline has passed: a blocked read returns at once, with an error."""
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _cut(connection)


def _cut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_CALL = threading.local()  # the CallDeadline of the call running on this thread, if any


def _watch(connection: HTTPConnection) -> None:
    deadline: CallDeadline | None = getattr(_CALL, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


class _WatchedHTTP(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # a kept-alive connection is not connected again
        super().request(*args, **kwargs)


class _WatchedHTTPS(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


WATCHED_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}  # for urllib3's pool manager


@contextlib.contextmanager
def call_deadline(seconds: float) -> Iterator[CallDeadline]:
    """Hold the HTTP call made inside the block to `seconds` in all."""
    deadline = CallDeadline()
    timer = threading.Timer(seconds, deadline.expire)
    timer.daemon = True
    _CALL.deadline = deadline
    timer.start()
    try:
        yield deadline
    finally:
        timer.cancel()
        _CALL.deadline = None
