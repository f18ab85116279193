"""The token store on a real temporary directory: atomic, private, encrypted, forgiving."""

from __future__ import annotations

import json
import os
import random
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.files import atomic_write
from mqtt_tokend.adapters.store import (
    BACKUP_FILE,
    SESSION_FILE,
    STATUS_FILE,
    TOKENS_FILE,
    Tokens,
    TokenStore,
    read_json,
    read_status,
    remove_login,
)
from mqtt_tokend.errors import CryptoError, StoreError

ACCESS = "ACCESS-plaintext-4f1e9c"
REFRESH = "REFRESH-plaintext-7b2d0a"
T0 = 1_800_000_000.0


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(
        access_token=ACCESS,
        refresh_token=REFRESH,
        expires_at=T0 + 3600,
        scope="user-read-playback-state user-modify-playback-state",
        issued_at=T0,
        authorized_at=T0 - 86400,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_round_trip(saved: TokenStore, tokens: Tokens) -> None:
    assert saved.load() == tokens
    # A second store on the same directory (the next process) reads the same tokens.
    other = TokenStore(saved.state_dir, cipher=saved._cipher)
    assert other.load() == tokens


def test_save_replaces_previous_tokens(saved: TokenStore, tokens: Tokens) -> None:
    rotated = replace(tokens, access_token="access-2", refresh_token="refresh-2")
    saved.save(rotated)
    assert saved.load() == rotated
    # The backup holds the new refresh token too: a single-use PKCE token must not be lost.
    saved.path(TOKENS_FILE).unlink()
    assert saved.load() == rotated


def test_missing_both_files_is_none(store: TokenStore) -> None:
    assert store.load() is None
    store.ensure_dir()
    assert store.load() is None


def test_files_are_private_and_state_dir_is_0700(saved: TokenStore) -> None:
    saved.save_session({"user_id": "alice"})
    assert _mode(saved.state_dir) == 0o700
    for name in (TOKENS_FILE, BACKUP_FILE, SESSION_FILE):
        assert _mode(saved.path(name)) == 0o600, name


def test_plaintext_tokens_never_reach_the_disk(saved: TokenStore, tokens: Tokens) -> None:
    saved.save_session({"user_id": "alice", "last_refresh": T0})
    saved.save_status({"state": "ok", "expires_at": tokens.expires_at})
    saved.save(replace(tokens, issued_at=T0 + 1))
    saved.path(TOKENS_FILE).write_bytes(b"{broken")
    assert saved.load() is not None  # recovers from the backup and rewrites the main file
    files = _listing(saved.state_dir)
    assert TOKENS_FILE in files
    assert f"{TOKENS_FILE}.corrupt" in files
    for name, content in files.items():
        assert ACCESS.encode() not in content, name
        assert REFRESH.encode() not in content, name


def test_token_file_format(saved: TokenStore) -> None:
    record = json.loads(saved.path(TOKENS_FILE).read_text())
    assert record["version"] == 1
    assert set(record) == {"version", "tokens"}
    assert saved._cipher.decrypt_json(record["tokens"])["refresh_token"] == REFRESH


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    for n in range(5):
        atomic_write(target, f"version {n}".encode())
    assert target.read_bytes() == b"version 4"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]
    assert _mode(target) == 0o600


def test_atomic_write_honours_mode(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    atomic_write(target, b"{}", mode=0o644)
    assert _mode(target) == 0o644


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file.json"
    atomic_write(target, b"old and good")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old and good"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_failed_save_keeps_the_old_tokens(
    saved: TokenStore, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        saved.save(replace(tokens, refresh_token="never-written"))
    monkeypatch.undo()
    assert saved.load() == tokens
    assert sorted(p.name for p in saved.state_dir.iterdir()) == sorted([BACKUP_FILE, TOKENS_FILE])


def _wrong_shape(store: TokenStore, cipher: TokenCipher) -> bytes:
    return b'["version", 1]'


def _wrong_version(store: TokenStore, cipher: TokenCipher) -> bytes:
    record = json.loads(store.path(TOKENS_FILE).read_text())
    record["version"] = 99
    return json.dumps(record).encode()


def _other_key(store: TokenStore, cipher: TokenCipher) -> bytes:
    other = TokenCipher([generate_key()])
    return json.dumps({"version": 1, "tokens": other.encrypt_json({"a": 1})}).encode()


def _incomplete_record(store: TokenStore, cipher: TokenCipher) -> bytes:
    return json.dumps({"version": 1, "tokens": cipher.encrypt_json({"scope": "x"})}).encode()


def _truncated(store: TokenStore, cipher: TokenCipher) -> bytes:
    return store.path(TOKENS_FILE).read_bytes()[:40]


def _random_bytes(store: TokenStore, cipher: TokenCipher) -> bytes:
    return random.Random(5).randbytes(256)


def _empty(store: TokenStore, cipher: TokenCipher) -> bytes:
    return b""


CORRUPTIONS = [
    _truncated,
    _random_bytes,
    _empty,
    _wrong_shape,
    _wrong_version,
    _other_key,
    _incomplete_record,
]
CORRUPTION_IDS = [
    "truncated",
    "random-bytes",
    "empty",
    "json-array",
    "wrong-version",
    "another-key",
    "incomplete-record",
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=CORRUPTION_IDS)
def test_corrupt_main_file_falls_back_to_backup_and_is_kept(
    saved: TokenStore, tokens: Tokens, cipher: TokenCipher, corrupt: object
) -> None:
    assert callable(corrupt)
    bad = corrupt(saved, cipher)
    saved.path(TOKENS_FILE).write_bytes(bad)

    assert saved.load() == tokens

    aside = saved.path(f"{TOKENS_FILE}.corrupt")
    assert aside.read_bytes() == bad  # kept for a person to inspect, not deleted
    assert _mode(aside) == 0o600
    # The main file is healthy again, so the next start does not need the backup.
    saved.path(BACKUP_FILE).unlink()
    assert saved.load() == tokens


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=CORRUPTION_IDS)
def test_both_files_unusable_raises_and_deletes_nothing(
    saved: TokenStore, cipher: TokenCipher, corrupt: object
) -> None:
    assert callable(corrupt)
    bad = corrupt(saved, cipher)
    saved.path(TOKENS_FILE).write_bytes(bad)
    saved.path(BACKUP_FILE).write_bytes(b"{not json")
    before = _listing(saved.state_dir)

    with pytest.raises((StoreError, CryptoError)) as caught:
        saved.load()

    message = str(caught.value)
    assert str(saved.path(TOKENS_FILE)) in message
    assert str(saved.path(BACKUP_FILE)) in message
    assert "Nothing was deleted" in message
    assert "mqtt-tokend auth" in message
    assert _listing(saved.state_dir) == before


def test_wrong_key_for_both_names_the_key_file(
    saved: TokenStore, state_dir: Path, tokens: Tokens
) -> None:
    stranger = TokenStore(state_dir, cipher=TokenCipher([generate_key()], source="/tmp/new.key"))
    before = _listing(state_dir)
    with pytest.raises((StoreError, CryptoError)) as caught:
        stranger.load()
    assert "/tmp/new.key" in str(caught.value)
    assert ACCESS not in str(caught.value)
    assert _listing(state_dir) == before
    assert saved.load() == tokens  # the right key still reads them


def test_main_missing_uses_backup_and_restores_main(saved: TokenStore, tokens: Tokens) -> None:
    saved.path(TOKENS_FILE).unlink()
    assert saved.load() == tokens
    assert saved.path(TOKENS_FILE).exists()
    assert not saved.path(f"{TOKENS_FILE}.corrupt").exists()


def test_corrupt_main_and_missing_backup_is_an_error_not_a_logout(saved: TokenStore) -> None:
    saved.path(TOKENS_FILE).write_bytes(b"\x00\x01")
    saved.path(BACKUP_FILE).unlink()
    with pytest.raises(StoreError, match="Nothing was deleted"):
        saved.load()
    assert saved.path(TOKENS_FILE).read_bytes() == b"\x00\x01"


@pytest.mark.parametrize(
    "content",
    [b"{trunc", b"\xff\xfe\x00garbage", b"[1, 2]", b'"a string"', b""],
    ids=["truncated", "binary", "array", "string", "empty"],
)
def test_load_session_on_corrupt_file_is_empty(store: TokenStore, content: bytes) -> None:
    store.ensure_dir()
    store.path(SESSION_FILE).write_bytes(content)
    assert store.load_session() == {}


def test_session_round_trip(store: TokenStore) -> None:
    assert store.load_session() == {}
    store.save_session({"user_id": "alice", "last_refresh": T0})
    assert store.load_session() == {"user_id": "alice", "last_refresh": T0}


def test_status_is_group_readable_only_and_round_trips(store: TokenStore) -> None:
    assert read_status(store.state_dir) is None
    record = {"state": "ok", "message": "token valid", "checked_at": T0}
    store.save_status(record)
    assert read_status(store.state_dir) == record
    assert _mode(store.path(STATUS_FILE)) == 0o640


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert read_json(path) is None
    path.write_text("[]")
    with pytest.raises(StoreError, match=str(path)):
        read_json(path)
    path.write_text("{")
    with pytest.raises(StoreError, match=str(path)):
        read_json(path)


def test_tokens_signature_changes_on_save(store: TokenStore, tokens: Tokens) -> None:
    assert store.tokens_signature() is None
    store.save(tokens)
    first = store.tokens_signature()
    assert first is not None
    store.save(tokens)  # even the same content is a new file
    second = store.tokens_signature()
    assert second is not None
    assert second != first
    assert store.tokens_signature() == second  # stable while nothing is written


def test_remove_login(saved: TokenStore) -> None:
    saved.save_session({"user_id": "alice"})
    saved.save_status({"state": "ok"})
    removed = remove_login(saved.state_dir)
    assert sorted(p.name for p in removed) == sorted([TOKENS_FILE, BACKUP_FILE, SESSION_FILE])
    assert saved.load() is None
    assert saved.path(STATUS_FILE).exists()
    assert remove_login(saved.state_dir) == []


def test_tokens_from_dict_rejects_bad_records() -> None:
    good = {
        "access_token": "a",
        "refresh_token": "r",
        "expires_at": T0,
        "issued_at": T0,
        "authorized_at": T0,
    }
    assert Tokens.from_dict(good).seconds_left(T0 - 10) == 10
    for broken in (
        {k: v for k, v in good.items() if k != "refresh_token"},
        good | {"expires_at": "soon"},
        good | {"access_token": ""},
        good | {"issued_at": None},
    ):
        with pytest.raises(StoreError):
            Tokens.from_dict(broken)


def test_repr_holds_no_token(tokens: Tokens, saved: TokenStore) -> None:
    for text in (repr(tokens), repr(saved)):
        assert ACCESS not in text
        assert REFRESH not in text
