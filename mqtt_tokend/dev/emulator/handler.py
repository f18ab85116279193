"""The HTTP side of the emulator: framing, routing, fault rendering and the control endpoints."""

from __future__ import annotations

import json
import logging
import math
import select
import socket
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

from mqtt_tokend.dev.emulator import webapi
from mqtt_tokend.dev.emulator.accounts import (
    GRANT_TYPES,
    Answer,
    AuthorizeError,
    api_error,
    oauth_error,
)
from mqtt_tokend.dev.emulator.control import CONTROL
from mqtt_tokend.dev.emulator.faults import Fault
from mqtt_tokend.dev.emulator.framing import (
    Trickle,
    error_page,
    first_values,
    parse_form,
    reason_phrase,
)
from mqtt_tokend.dev.emulator.httpd import EmulatorServer

if TYPE_CHECKING:
    from collections.abc import Iterable

_LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"

# (method, path) -> endpoint name, for the Accounts service (these count and take faults, as
# the Web API's endpoints in `webapi.ROUTES` do)
_ACCOUNTS = {
    ("GET", "/authorize"): "authorize",
    ("POST", "/api/token"): "token",
}
_GARBAGE = b"<html><head><title>502 Bad Gateway</title></head><body>upstream hiccup</body></html>"
# What a cut-off answer would have been; never a real token.
_PLAUSIBLE: dict[str, dict[str, Any]] = {
    "token": {
        "access_token": "BQD" + "x" * 100,
        "token_type": "Bearer",
        "scope": "user-read-playback-state",
        "expires_in": 3600,
    },
    "authorize": {"error": "server_error"},
}


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, so every answer carries Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "SpotifyEmulator/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed, as Spotify's front ends do
    disable_nagle_algorithm = True

    @property
    def _srv(self) -> EmulatorServer:
        return cast(EmulatorServer, self.server)

    def setup(self) -> None:
        """Register the connection so stop() can cut it."""
        super().setup()
        self._srv.track(self.connection)

    def finish(self) -> None:
        """Forget the connection."""
        try:
            super().finish()
        finally:
            self._srv.untrack(self.connection)

    def do_GET(self) -> None:
        """Route a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Route a POST."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Route a DELETE."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Route a PUT (always 404 or 405)."""
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the base class would log request lines, and query strings hold codes."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log the method and path only, never a query string or header."""
        _LOG.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    # -- framing ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        path = path.rstrip("/") or "/"
        body = self._read_body()
        if body is None:
            return
        control = CONTROL.get((self.command, path))
        endpoint = _ACCOUNTS.get((self.command, path)) or webapi.route(self.command, path)
        try:
            if endpoint is not None:
                self._spotify(endpoint, path, body)
            elif control is not None:
                status, answer = control(self._srv, body)
                self._json(answer, status)
            elif path in _KNOWN_PATHS or webapi.known_path(path):
                self._json(api_error(405, "Method not allowed").body, 405)
            else:
                self._json(api_error(404, "Service not found").body, 404)
        except OSError:
            raise  # the client went away; socketserver logs it quietly
        except Exception:
            _LOG.warning("emulator: %s %s failed", self.command, path, exc_info=True)
            self.close_connection = True
            self._json(api_error(500, "Emulator error").body, 500)

    def _read_body(self) -> bytes | None:
        """The request body, or None when the request was answered (or dropped) already."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._json(api_error(411, "Content-Length required").body, 411)
            return None
        raw = self.headers.get("Content-Length", "0").strip()
        if not (raw.isascii() and raw.isdigit()):
            self.close_connection = True
            self._json(api_error(400, "Malformed Content-Length").body, 400)
            return None
        length = int(raw)
        if length > MAX_BODY:
            self.close_connection = True
            self._json(api_error(413, f"Request body over {MAX_BODY} bytes").body, 413)
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client hung up mid-body
            return None
        return body

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, body: dict[str, Any], status: int = 200, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    # -- Spotify ---------------------------------------------------------------------------

    def _spotify(self, endpoint: str, path: str, body: bytes) -> None:
        srv = self._srv
        srv.counters.add(endpoint)
        form = parse_form(body) if endpoint == "token" else None
        if form is not None and form.get("grant_type") in GRANT_TYPES:
            srv.counters.add(form["grant_type"])
        fault = srv.faults.take(endpoint)
        if fault is not None and self._apply(fault, endpoint):
            return
        if endpoint == "authorize":
            self._authorize()
        elif endpoint == "token":
            self._token(form)
        else:
            self._api(endpoint, path, body)

    def _api(self, endpoint: str, path: str, body: bytes) -> None:
        bearer = self._srv.accounts.bearer(self.headers.get("Authorization"))
        if isinstance(bearer, Answer):
            answer = bearer
        else:
            try:
                document = json.loads(body) if body else None
            except (ValueError, RecursionError):
                document = None
            query = first_values(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            request = webapi.Request(endpoint, path, query, document)
            answer = self._srv.webapi.answer(request, user=bearer.user)
        if answer.status == 204:
            self._send(204, b"", None)
        else:
            self._json(answer.body, answer.status)

    def _authorize(self) -> None:
        query = first_values(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        try:
            location = self._srv.accounts.authorize(
                client_id=query.get("client_id", ""),
                redirect_uri=query.get("redirect_uri", ""),
                state=query.get("state"),
                scope=query.get("scope", ""),
                response_type=query.get("response_type", ""),
                code_challenge=query.get("code_challenge"),
                code_challenge_method=query.get("code_challenge_method"),
            )
        except AuthorizeError as err:
            self._send(400, error_page(str(err)), "text/html; charset=utf-8")
            return
        self._send(302, b"", None, [("Location", location)])

    def _token(self, form: dict[str, str] | None) -> None:
        if form and self.headers.get_content_type() != FORM_TYPE:
            answer = oauth_error("invalid_request", f"Content-Type must be {FORM_TYPE}")
        elif form is None:
            answer = oauth_error("invalid_request", "Malformed form body")
        else:
            answer = self._srv.accounts.token(form, self.headers.get("Authorization"))
        no_store = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        self._json(answer.body, answer.status, no_store)

    def _client_gone(self) -> bool:
        """True when the client has closed its end of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _apply(self, fault: Fault, endpoint: str) -> bool:
        """Misbehave; False when the request should then be answered normally (a delay)."""
        if fault.kind == "delay":
            if not self._srv.stopping.wait(fault.delay) and not self._client_gone():
                return False
            # Stopping, or the client gave up (a timeout, a killed process): the request is
            # dropped before it is carried out, as when it is stuck in the network.
            self.close_connection = True
            return True
        if fault.kind == "drop":
            self.close_connection = True  # no bytes at all: the client sees the socket close
            return True
        if fault.kind == "garbage":
            self._send(200, _GARBAGE, "text/html; charset=utf-8")
            return True
        if fault.kind == "truncated":
            full = json.dumps(_PLAUSIBLE.get(endpoint) or webapi.plausible(endpoint)).encode()
            self._send(200, full[: len(full) // 2], "application/json")
            return True
        if fault.kind == "trickle":
            # An error answer, so a client patient enough to read it all still gets no token.
            self.close_connection = True
            plain = self.wfile
            self.wfile = cast("Any", Trickle(plain, fault.delay, self._srv.stopping))
            try:
                self._render(fault, endpoint)
            finally:
                self.wfile = plain
            return True
        self._render(fault, endpoint)
        return True

    def _render(self, fault: Fault, endpoint: str) -> None:
        """The error answer of a "status", "rate_limit" or "trickle" fault."""
        status, headers = fault.status, []
        if fault.kind == "rate_limit":
            status = 429
            headers.append(("Retry-After", str(math.ceil(fault.retry_after))))
        if endpoint == "authorize":
            self._send(
                status, error_page(reason_phrase(status)), "text/html; charset=utf-8", headers
            )
        elif endpoint == "token":
            error = "server_error" if status >= 500 else "invalid_request"
            body = oauth_error(error, f"emulated fault: HTTP {status}").body
            self._json(body, status, headers)
        else:
            self._json(api_error(status, reason_phrase(status)).body, status, headers)


_KNOWN_PATHS = frozenset(path for _, path in (*_ACCOUNTS, *CONTROL))
