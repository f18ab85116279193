"""The loopback listener of `auth --listen`: serve the redirect URI once, return the address."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mqtt_tokend.errors import InputError


class _V6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6


def listen_for_redirect(
    redirect_uri: str, *, timeout: float, on_ready: Callable[[str], None] | None = None
) -> str:
    """Serve the loopback redirect URI once and return the full address the browser hit."""
    parts = urlsplit(redirect_uri)
    host = (parts.hostname or "127.0.0.1").strip("[]")
    port = parts.port or 80
    received: list[str] = []
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != (parts.path or "/"):
                self.send_error(404)
                return
            received.append(f"{parts.scheme}://{parts.netloc}{self.path}")
            body = (
                b"<!doctype html><title>mqtt-tokend</title><p>Done. You can close this tab; "
                b"the Pi finishes the login.</p>"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: the query string holds the authorization code."""

    server_class = _V6Server if ":" in host else http.server.HTTPServer
    try:
        server = server_class((host, port), Handler)
    except OSError as err:
        raise InputError(f"cannot listen on {host}:{port} ({err.strerror})") from err
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        if on_ready is not None:
            on_ready(f"{host}:{server.server_address[1]}")
        if not done.wait(timeout):
            raise InputError(f"no browser reached {redirect_uri} within {timeout:g} s")
    finally:
        server.shutdown()
        server.server_close()
    return received[0]
