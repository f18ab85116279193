"""The redaction filter keeps every token, secret, code and key out of log lines."""

from __future__ import annotations

import logging

import pytest

from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.crypto import TokenCipher, generate_key

SECRET = "sEcReT-value-1234567890"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        (f"token is {SECRET}", SECRET),
        ("Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"),
        ('{"access_token": "BQDx12345678abcd"}', "BQDx12345678abcd"),
        ("refresh_token=AQCy987654321zz&x=1", "AQCy987654321zz"),
        ("GET /callback?code=AQB7abcdefgh&state=xyz", "AQB7abcdefgh"),
        ("client_secret: 0123456789abcdef", "0123456789abcdef"),
        ("GET /callback?code=AQB7abcdefgh&state=Zx8-_q", "Zx8-_q"),
        ("login at https://a.test/authorize?client_id=c&state=S3cr3tState&x=1", "S3cr3tState"),
        ("STATE=abc", "abc"),
        ("redirect https://ha.example:8123/api/webhook/wh-ID_42?code=x", "wh-ID_42"),
        ("POST /api/webhook/wh-ID_42 HTTP/1.1", "wh-ID_42"),
    ],
    ids=[
        "remembered",
        "bearer",
        "json-access",
        "form-refresh",
        "code",
        "client-secret",
        "state-in-redirect",
        "state-in-login-url",
        "state-upper-case",
        "webhook-id-in-url",
        "webhook-id-in-path",
    ],
)
def test_redact_removes_secrets(text: str, leak: str) -> None:
    logsafe.remember(SECRET)
    cleaned = logsafe.redact(text)
    assert leak not in cleaned
    assert logsafe.REDACTED in cleaned


def test_fernet_tokens_are_redacted() -> None:
    token = TokenCipher([generate_key()]).encrypt_json({"access_token": "x"})
    assert token not in logsafe.redact(f"payload {token}")


@pytest.mark.parametrize(
    "text",
    [
        "refresh failed (GET /v1/me: Spotify answered 503); retrying in 4 s",
        "state ok -> auth_required: the login has expired",
        '{"state": "ok", "message": "token refreshed"}',
        "see /api/webhook/ in the Home Assistant docs",
    ],
    ids=["refresh", "state-change", "health-json", "webhook-docs"],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert logsafe.redact(text) == text


def test_filter_cleans_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logsafe.remember(SECRET)
    logger = logging.getLogger("test.logsafe")
    handler = caplog.handler
    handler.addFilter(logsafe.RedactingFilter())
    try:
        logger.warning("value %s", SECRET)
        try:
            raise ValueError(f"boom {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        handler.removeFilter(handler.filters[-1])
    assert SECRET not in caplog.text
    assert "value [redacted]" in caplog.text
