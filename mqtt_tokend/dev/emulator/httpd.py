"""The emulator's HTTP server: it owns the model, the faults and the counters its handlers use.

It takes the handler class as an argument, so the handler can import this module for its type
and the server never imports the handler.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from mqtt_tokend.dev.emulator.accounts import GRANT_TYPES, Accounts
from mqtt_tokend.dev.emulator.faults import ENDPOINTS, FaultQueue
from mqtt_tokend.dev.emulator.webapi import WebApi

_LOG = logging.getLogger(__name__)

COUNTER_NAMES = (*ENDPOINTS, *GRANT_TYPES)


class Counters:
    """Thread-safe call counters, one per endpoint and per grant type."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTER_NAMES, 0)

    def add(self, name: str) -> None:
        """Count one call."""
        with self._lock:
            self._counts[name] += 1

    def get(self, name: str) -> int:
        """The count for `name`; ValueError for a name that is never counted."""
        if name not in self._counts:
            raise ValueError(f"no counter {name!r}; counters: {', '.join(COUNTER_NAMES)}")
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            self._counts = dict.fromkeys(COUNTER_NAMES, 0)


class EmulatorServer(ThreadingHTTPServer):
    """The HTTP server; it owns the model, the faults and the counters the handlers use."""

    daemon_threads = True
    timeout = 0.0  # handle_request() only runs once the selector says a client is waiting

    def __init__(
        self,
        host: str,
        port: int,
        *,
        handler: type[BaseHTTPRequestHandler],
        accounts: Accounts,
        webapi: WebApi,
        faults: FaultQueue,
        counters: Counters,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.accounts = accounts
        self.webapi = webapi
        self.faults = faults
        self.counters = counters
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can stall a Pi with no DNS."""
        TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def serve_until_stopped(self) -> None:
        """Accept connections until `wake()`; stopping costs no poll interval."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self.handle_request()

    def wake(self) -> None:
        """Stop serving: end the accept loop, delays in progress and open connections."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def track(self, connection: socket.socket) -> None:
        """Remember an open client connection."""
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed client connection."""
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Cut every open client connection, as a dead server would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        """Close the listening socket and the wake-up pair."""
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is routine; anything else is a bug worth a warning."""
        if isinstance(sys.exc_info()[1], OSError):
            _LOG.debug("emulator: client connection error", exc_info=True)
        else:
            _LOG.warning("emulator: handler failed", exc_info=True)
