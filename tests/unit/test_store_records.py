"""The store's plain state files (session, status) on a real directory: each is checked for shape,
and a wrong one is kept aside and named, never trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import SESSION_FILE, TokenStore, read_status
from mqtt_tokend.errors import StoreError

T0 = 1_800_000_000.0


# -- each plain state file is checked for shape; a wrong one is kept aside, not trusted ----


def _aside(store: TokenStore, name: str) -> list[str]:
    return sorted(p.name for p in store.state_dir.iterdir() if p.name.startswith(f"{name}."))


@pytest.mark.parametrize(
    "session",
    [
        {"reauth_warned": 5},
        {"reauth_warned": ["soon"]},
        {"last_refresh": "yesterday"},
        {"last_refresh": True},
        {"authorized_at": [1]},
        {"display_name": 42},
        {"user_id": {"id": "alice"}},
        {"client_id": 7},
        {"retry_after_until": "later"},
    ],
    ids=lambda session: "-".join(f"{k}={type(v).__name__}" for k, v in session.items()),
)
def test_a_wrong_shaped_session_is_kept_aside_and_named(
    store: TokenStore, session: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    store.ensure_dir()
    store.path(SESSION_FILE).write_text(json.dumps(session))
    assert store.load_session() == {}
    assert _aside(store, SESSION_FILE) == [f"{SESSION_FILE}.corrupt"]
    key = next(iter(session))
    assert f"not a session record ({key} is {type(session[key]).__name__})" in caplog.text
    assert json.loads(store.path(f"{SESSION_FILE}.corrupt").read_text()) == session


def test_a_session_with_every_known_key_and_an_unknown_one_is_kept(store: TokenStore) -> None:
    session = {
        "authorized_at": T0,
        "last_refresh": T0 + 1,
        "client_id": "client",
        "display_name": None,
        "user_id": "alice",
        "reauth_warned": [7, 1.5],
        "retry_after_until": T0 + 3600,
        "from_a_newer_version": {"any": "thing"},
    }
    store.save_session(session)
    assert store.load_session() == session
    assert _aside(store, SESSION_FILE) == []


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ({"message": "m", "checked_at": T0}, "state is missing"),
        ({"state": "fine", "message": "m", "checked_at": T0}, "state is str"),
        ({"state": "ok", "message": 5, "checked_at": T0}, "message is int"),
        ({"state": "ok", "message": "m", "checked_at": None}, "checked_at is NoneType"),
        ({"state": "ok", "message": "m", "checked_at": T0, "expires_at": "x"}, "expires_at is str"),
        (
            {"state": "ok", "message": "m", "checked_at": T0, "consecutive_failures": -1},
            "consecutive_failures is int",
        ),
    ],
    ids=["no-state", "unknown-state", "message", "checked_at", "expires_at", "failures"],
)
def test_a_wrong_shaped_status_file_is_refused(
    store: TokenStore, status: dict[str, object], problem: str
) -> None:
    store.save_status(status)
    with pytest.raises(StoreError, match=f"is not a health record .*{problem}"):
        read_status(store.state_dir)  # what status and health-check read: an error, not "ok"


def test_a_retry_after_survives_a_restart_and_ends(
    state_dir: Path, cipher: TokenCipher, store: TokenStore
) -> None:
    store.save_session({"user_id": "alice"})
    store.remember_retry_after(T0 + 600)
    restarted = TokenStore(state_dir, cipher=cipher)
    assert restarted.retry_after_until(T0) == T0 + 600
    assert restarted.retry_after_until(T0 + 600) is None  # over
    assert restarted.load_session()["user_id"] == "alice"  # the rest of the record is kept
    restarted.remember_retry_after(None)
    assert restarted.retry_after_until(T0) is None


def test_a_stored_retry_after_beyond_the_cap_is_cut_to_an_hour(store: TokenStore) -> None:
    store.remember_retry_after(T0 + 86400)  # written by a version that honoured a day
    assert store.retry_after_until(T0) == T0 + 3600
