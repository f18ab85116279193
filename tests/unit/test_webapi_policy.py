"""The Web API client's rules without I/O: which calls an app token may make (checked against
Spotify's published Web API description), Retry-After, backoff, and the health view."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mqtt_tokend.config import MqttConfig
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.webapi.errors import LOGIN_FIX, LoginNeeded, RequestRefused
from mqtt_tokend.webapi.health import HealthView
from mqtt_tokend.webapi.policy import (
    APP_TOKEN_PATHS,
    RetryPolicy,
    app_token_allowed,
    retry_after,
)

ROOT = Path(__file__).parents[2]
# ../shared/reference/ beside the checkout (one more level up from a git worktree in wt/).
OPENAPI = next(
    (
        where / "shared" / "reference" / "spotify-web-api-openapi.yml"
        for where in (ROOT.parent, ROOT.parent.parent)
        if (where / "shared" / "reference").is_dir()
    ),
    ROOT.parent / "shared" / "reference" / "spotify-web-api-openapi.yml",
)


def _concrete(template: str) -> str:
    return "/v1" + re.sub(r"\{[^}]+\}", "0VjIjW4GlUZAMYd2vXMi3b", template)


def _operations() -> list[tuple[str, str, bool]]:
    """(method, concrete path, an app token may call it) for every operation Spotify lists."""
    if not OPENAPI.exists():
        pytest.skip("Spotify's Web API description is not in ../shared/reference/")
    document: dict[str, Any] = yaml.safe_load(OPENAPI.read_text())
    found = []
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "delete"):
                continue
            scopes = [
                s for item in operation.get("security", []) for s in item.get("oauth_2_0", [])
            ]
            app = method == "get" and not scopes and not template.startswith("/me")
            found.append((method.upper(), _concrete(template), app))
    return found


def test_app_token_paths_match_spotifys_description() -> None:
    """Over every operation in the description: allowed exactly when it is a GET with no user
    scope outside /me (a client-credentials token has no user)."""
    operations = _operations()
    wrong = [(m, p) for m, p, app in operations if app_token_allowed(m, p) != app]
    assert not wrong, wrong
    assert len(operations) > 80
    assert sum(app for _, _, app in operations) == len(APP_TOKEN_PATHS)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/search", True),
        ("get", "/v1/tracks/abc", True),
        ("GET", "/v1/tracks/abc/extra", False),
        ("PUT", "/v1/tracks", False),
        ("GET", "/v1/me/player", False),
        ("GET", "/v1/searchx", False),
        ("GET", "/search", False),
    ],
)
def test_app_token_allowed_table(method: str, path: str, allowed: bool) -> None:
    assert app_token_allowed(method, path) is allowed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 1.0),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("nan", 1.0),
        ("inf", 1.0),
        ("soon", 1.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),  # an HTTP date, 40 s after `now`
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # a date in the past
    ],
)
def test_retry_after(header: str | None, seconds: float) -> None:
    assert retry_after(header, now=60.0) == pytest.approx(seconds)


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=3.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff(4, lambda: 0.0) == 0.0
    with pytest.raises(ValueError, match="server_retries"):
        RetryPolicy(server_retries=-1)
    with pytest.raises(ValueError, match="retry_after_cap"):
        RetryPolicy(retry_after_cap=float("nan"))


def _deliver(view: HealthView, payload: bytes) -> None:
    view.receive(Message(view.topic, payload, retain=True))


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1]", b'{"state": 3}', b'{"no": "state"}', b"{" * 10000, b"x" * 20000],
    ids=["empty", "garbage", "array", "state-not-text", "no-state", "deep", "huge"],
)
def test_the_health_view_ignores_what_is_not_a_record(payload: bytes) -> None:
    view = HealthView(MqttConfig(base_topic="t"))
    _deliver(view, json.dumps({"state": "ok"}).encode())
    _deliver(view, payload)
    assert view.login().state == "ok"


@pytest.mark.parametrize(
    ("record", "no_user_token", "needs_person"),
    [
        ({"state": "ok"}, False, False),
        ({"state": "retrying"}, False, False),
        ({"state": "auth_required", "instructions": "run auth"}, True, True),
        ({"state": "auth_required"}, True, True),
        ({"state": "degraded", "instructions": "run auth"}, True, True),
        ({"state": "degraded", "instructions": None}, True, False),  # Spotify down, app token
    ],
    ids=["ok", "retrying", "auth", "auth-no-words", "degraded-login", "degraded-outage"],
)
def test_the_health_view_judges_the_login(
    record: dict[str, Any], no_user_token: bool, needs_person: bool
) -> None:
    view = HealthView(MqttConfig(base_topic="t"))
    _deliver(view, json.dumps(record).encode())
    login = view.login()
    assert (login.no_user_token, login.needs_person) == (no_user_token, needs_person)


def test_errors_say_what_to_do_and_never_hold_a_token() -> None:
    needed = LoginNeeded(path="/v1/me/player", instructions=None, state="auth_required")
    assert LOGIN_FIX in str(needed) and "sudo mqtt-tokend auth" in str(needed)
    assert "Home Assistant" in str(needed)
    refused = RequestRefused(path="/v1/me/player/play", status=403, message="Premium required")
    assert "scope" in str(refused) and "Premium" in str(refused)


def test_only_the_first_look_waits_for_a_health_record() -> None:
    """A consumer whose broker account may not read health must not pay the wait per call."""
    view = HealthView(MqttConfig(base_topic="t"))
    started = time.monotonic()
    assert view.login(wait=0.3).state is None
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    for _ in range(10):
        assert view.login(wait=0.3).state is None
    assert time.monotonic() - started < 0.3
