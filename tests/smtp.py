"""A tiny threaded SMTP receiver for tests: enough of RFC 5321 for `smtplib` (and AUTH PLAIN).

Python 3.11's `smtpd` is deprecated (and the suite runs with warnings as errors), so this is a
`socketserver` of its own: it keeps every message it is given, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType


@dataclass(frozen=True)
class Received:
    """One delivered message with its envelope and the credentials it logged in with."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    message: EmailMessage
    login: tuple[str, str] | None


class _Session(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def read(self) -> str | None:
        raw = self.rfile.readline(65536)
        return raw.decode("utf-8", "replace").rstrip("\r\n") if raw else None

    def handle(self) -> None:
        self.sender, self.recipients = "", list[str]()
        self.login: tuple[str, str] | None = None
        verbs: dict[str, Callable[[str], None]] = {
            "EHLO": lambda _: self.reply("250-test-smtp\r\n250 AUTH PLAIN"),
            "HELO": lambda _: self.reply("250 test-smtp"),
            "AUTH": self.on_auth,
            "MAIL": self.on_mail,
            "RCPT": self.on_rcpt,
            "DATA": self.on_data,
            "RSET": lambda _: self.reply("250 ok"),
            "NOOP": lambda _: self.reply("250 ok"),
        }
        self.reply("220 test-smtp ready")
        while (line := self.read()) is not None:
            verb, _, rest = line.partition(" ")
            if verb.upper() == "QUIT":
                self.reply("221 bye")
                return
            action = verbs.get(verb.upper())
            if action is None:
                self.reply("502 not implemented")
            else:
                action(rest)

    def on_auth(self, rest: str) -> None:
        login = self.auth(rest)
        if login is None or login not in self.server.accounts:
            self.reply("535 authentication failed")
            return
        self.login = login
        self.reply("235 authenticated")

    def on_mail(self, rest: str) -> None:
        if self.server.accounts and self.login is None:
            self.reply("530 authentication required")
            return
        self.sender, self.recipients = _address(rest), []
        self.reply("250 ok")

    def on_rcpt(self, rest: str) -> None:
        self.recipients.append(_address(rest))
        self.reply("250 ok")

    def on_data(self, _rest: str) -> None:
        self.reply("354 end with <CRLF>.<CRLF>")
        received = Received(self.sender, tuple(self.recipients), self.data(), self.login)
        self.server.deliver(received)
        self.reply("250 queued")

    def auth(self, rest: str) -> tuple[str, str] | None:
        mechanism, _, initial = rest.partition(" ")
        if mechanism.upper() != "PLAIN":
            return None
        if not initial:
            self.reply("334 ")
            initial = self.read() or ""
        try:
            _, user, password = base64.b64decode(initial).decode().split("\0")
        except ValueError:
            return None
        return user, password

    def data(self) -> EmailMessage:
        lines = []
        while (line := self.read()) is not None and line != ".":
            lines.append(line[1:] if line.startswith("..") else line)
        parsed = email.message_from_string("\r\n".join(lines) + "\r\n", policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _address(rest: str) -> str:
    return rest.partition(":")[2].strip().split(" ")[0].strip("<>")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, accounts: set[tuple[str, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Session)
        self.accounts = accounts
        self.received: list[Received] = []
        self.changed = threading.Condition()

    def deliver(self, received: Received) -> None:
        with self.changed:
            self.received.append(received)
            self.changed.notify_all()


class SmtpServer:
    """Start on a free port with `with SmtpServer() as smtp:`; `accounts` turns on AUTH."""

    host = "127.0.0.1"

    def __init__(self, *, accounts: set[tuple[str, str]] | None = None) -> None:
        self._server = _Server(accounts or set())
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def received(self) -> list[Received]:
        """Every message delivered so far."""
        with self._server.changed:
            return list(self._server.received)

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Received]:
        """Block until `count` messages have arrived, or fail at the deadline."""
        deadline = time.monotonic() + timeout
        with self._server.changed:
            while len(self._server.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len(self._server.received)
                    raise AssertionError(f"{got} of {count} e-mails arrived in {timeout:g} s")
                self._server.changed.wait(left)
            return list(self._server.received)

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _v: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
