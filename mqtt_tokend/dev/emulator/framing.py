"""Framing helpers of the emulator's HTTP side: forms, error pages, reasons, trickled writes."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterable
from http import HTTPStatus
from io import BufferedIOBase
from urllib.parse import parse_qsl


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The first value of each key, as Spotify's form parser keeps it."""
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def parse_form(body: bytes) -> dict[str, str] | None:
    """The form's fields (first value wins), or None when it is not a form at all."""
    try:
        return first_values(
            parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        )
    except ValueError:  # bad UTF-8 or too many fields
        return None


def error_page(message: str) -> bytes:
    """An HTML error page like the Accounts service shows a browser."""
    return (
        "<!doctype html><html><head><title>Error - Spotify</title></head><body>"
        f"<h1>Oops! Something went wrong</h1><p>{html.escape(message)}</p></body></html>"
    ).encode()


class Trickle:
    """A writer that sends one byte every `interval` seconds, as a stalled front end does."""

    def __init__(self, out: BufferedIOBase, interval: float, stopping: threading.Event) -> None:
        self._out, self._interval, self._stopping = out, interval, stopping

    def write(self, data: bytes) -> int:
        """Send `data` a byte at a time; ConnectionAbortedError when the emulator stops."""
        for index in range(len(data)):
            self._out.write(data[index : index + 1])
            self._out.flush()
            if self._stopping.wait(self._interval):
                raise ConnectionAbortedError("the emulator is stopping")
        return len(data)


def reason_phrase(status: int) -> str:
    """The status line's reason for any code, an emulated one included."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Emulated fault"
