"""The redaction filter: no token, secret, code, key, login state or webhook id reaches a
log line.

Modules register every secret they hold (`remember`); the filter, installed on the CLI's
handlers, replaces registered values and anything shaped like a credential: a `state=` value
(a login's state) and the id in a Home Assistant webhook path (`/api/webhook/<id>`) too.
"""

from __future__ import annotations

import logging
import re
import threading

MIN_SECRET_LENGTH = 6
MAX_REMEMBERED = 64
REDACTED = "[redacted]"

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|code_verifier|code|password|key)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]{6,}"
    ),
    re.compile(r"gAAAAA[A-Za-z0-9_-]{20,}={0,2}"),  # a Fernet token
    re.compile(r"(?i)(\bstate=)[^\s\"'&,}#]+"),  # a login's state, as in a URL
    re.compile(r"(?i)(/api/webhook/)[^\s\"'/?&#]+"),  # Home Assistant's webhook id
]

_lock = threading.Lock()
_secrets: list[str] = []


def remember(*values: str | None) -> None:
    """Register values that must never be logged (the newest are kept, a bounded number)."""
    with _lock:
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH and value not in _secrets:
                _secrets.append(value)
        del _secrets[:-MAX_REMEMBERED]


def redact(text: str) -> str:
    """`text` with every registered secret and credential-shaped value replaced."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.lastindex else "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record, cleaned."""
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
