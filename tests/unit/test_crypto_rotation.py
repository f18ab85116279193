"""`rotate-key`: a new primary key in front, old keys kept, the file replaced in place."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import (
    TokenCipher,
    generate_key,
    read_key_file,
    rotate_key_file,
    write_key_file,
)
from mqtt_tokend.adapters.store import (
    BACKUP_FILE,
    PENDING_FILE,
    TOKENS_FILE,
    Tokens,
    TokenStore,
    read_json,
    reencrypt,
    write_json,
)
from mqtt_tokend.errors import CryptoError, StoreError


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "fernet.key"
    write_key_file(path)
    return path


def test_a_new_primary_key_goes_first_and_the_old_ones_stay(key_file: Path) -> None:
    before = read_key_file(key_file)
    old = TokenCipher.from_file(key_file)
    secret = old.encrypt_json({"a": 1})
    assert rotate_key_file(key_file) == 2
    after = read_key_file(key_file)
    assert after[1:] == before and after[0] not in before
    new = TokenCipher.from_file(key_file)
    assert new.decrypt_json(secret) == {"a": 1}  # tokens made with the old key still open
    fresh = new.encrypt_json({"b": 2})
    assert new.is_primary(fresh) and not new.is_primary(secret)
    with pytest.raises(CryptoError):
        old.decrypt_json(fresh)  # a consumer that never reloads its keys cannot read it


def test_keep_retires_the_oldest_keys(key_file: Path) -> None:
    rotate_key_file(key_file)
    rotate_key_file(key_file)
    newest = read_key_file(key_file)[:2]
    assert rotate_key_file(key_file, keep=3) == 3
    assert read_key_file(key_file)[1:] == newest
    assert rotate_key_file(key_file, keep=1) == 1
    with pytest.raises(CryptoError, match="at least 1"):
        rotate_key_file(key_file, keep=0)


def test_the_mode_is_kept_and_no_temporary_file_is_left(key_file: Path) -> None:
    key_file.chmod(0o640)
    inode = key_file.stat().st_ino
    rotate_key_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
    assert key_file.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["fernet.key"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_the_owner_and_group_are_kept(key_file: Path) -> None:
    os.chown(key_file, 1234, 5678)
    rotate_key_file(key_file)
    assert (key_file.stat().st_uid, key_file.stat().st_gid) == (1234, 5678)


def test_a_missing_or_broken_key_file_is_left_alone(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="keygen"):
        rotate_key_file(tmp_path / "absent.key")
    broken = tmp_path / "broken.key"
    broken.write_text("not a key\n")
    broken.chmod(0o600)
    with pytest.raises(CryptoError, match="line 1"):
        rotate_key_file(broken)
    assert broken.read_text() == "not a key\n"


def test_a_key_file_it_may_not_replace_is_a_clear_error(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = key_file.read_bytes()

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(CryptoError, match="owner or as root"):
        rotate_key_file(key_file)
    assert key_file.read_bytes() == before


# -- retiring keys: the state files move to the new key first ---------------------------------


def test_retiring_keys_reencrypts_before_and_after(key_file: Path) -> None:
    before = read_key_file(key_file)
    sealed = TokenCipher(before).encrypt(b"the stored login")
    seen: list[int] = []  # keys in the file each time the callback runs

    def reencrypt_state(cipher: TokenCipher) -> None:
        assert cipher.decrypt(sealed) == b"the stored login"  # it holds the old key
        assert not cipher.is_primary(sealed)  # and a new primary
        seen.append(len(read_key_file(key_file)))

    assert rotate_key_file(key_file, keep=1, before_retiring=reencrypt_state) == 1
    assert seen == [2, 1]  # the old key still in the file while re-encrypting, then gone
    assert read_key_file(key_file) != before


def test_nothing_retired_means_no_reencryption(key_file: Path) -> None:
    calls: list[TokenCipher] = []
    assert rotate_key_file(key_file, keep=2, before_retiring=calls.append) == 2
    assert calls == []


def test_a_failed_reencryption_retires_nothing(key_file: Path) -> None:
    before = read_key_file(key_file)

    def refuse(_cipher: TokenCipher) -> None:
        raise StoreError("state directory cannot be read (Permission denied)")

    with pytest.raises(StoreError):
        rotate_key_file(key_file, keep=1, before_retiring=refuse)
    after = read_key_file(key_file)
    assert after[1:] == before and len(after) == 2  # new key added, the old one kept


def test_reencrypt_moves_tokens_backup_and_pending_to_the_primary_key(tmp_path: Path) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = TokenCipher([old_key])
    state = tmp_path / "state"
    store = TokenStore(state, cipher=old)
    store.save(
        Tokens(
            access_token="A",
            refresh_token="R",
            expires_at=2.0,
            scope="",
            issued_at=1.0,
            authorized_at=1.0,
        )
    )
    write_json(state / PENDING_FILE, {"secret": old.encrypt_json({"state": "s"})})
    (state / "unrelated.json").write_text("{}")
    both = TokenCipher([new_key, old_key])
    assert sorted(reencrypt(state, both)) == sorted([TOKENS_FILE, BACKUP_FILE, PENDING_FILE])
    only_new = TokenCipher([new_key])
    assert TokenStore(state, cipher=only_new).load() is not None
    pending = read_json(state / PENDING_FILE)
    assert pending is not None
    assert only_new.decrypt_json(pending["secret"]) == {"state": "s"}
    assert reencrypt(state, both) == []  # already on the primary key


def test_reencrypt_refuses_a_state_directory_it_cannot_read(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any directory")
    state = tmp_path / "state"
    state.mkdir(mode=0o000)
    try:
        with pytest.raises(StoreError, match="cannot be read"):
            reencrypt(state, TokenCipher([generate_key()]))
    finally:
        state.chmod(0o700)
