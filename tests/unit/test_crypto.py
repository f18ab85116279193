"""Key files and Fernet encryption: parsing, rotation, permissions, and no key in any message."""

from __future__ import annotations

import stat
import traceback
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from mqtt_tokend.adapters.crypto import (
    TokenCipher,
    check_key_file_mode,
    generate_key,
    write_key_file,
)
from mqtt_tokend.errors import ConfigError, CryptoError


def _key_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="ascii")
    path.chmod(mode)
    return path


def test_generate_key_is_a_fernet_key() -> None:
    key = generate_key()
    Fernet(key)  # raises if not
    assert generate_key() != key


def test_key_file_with_comments_blank_lines_and_several_keys(tmp_path: Path) -> None:
    first, second, third = generate_key(), generate_key(), generate_key()
    text = (
        "# mqtt-tokend keys: the first line encrypts\n"
        "\n"
        f"  {first.decode()}  \n"
        "   # rotated out next month\n"
        f"{second.decode()}\n"
        "\n\n"
        f"{third.decode()}"
    )
    cipher = TokenCipher.from_file(_key_file(tmp_path / "fernet.key", text))

    # The first key encrypts: a consumer holding only the first key can read new payloads.
    token = cipher.encrypt(b"hello")
    assert Fernet(first).decrypt(token) == b"hello"
    for other in (second, third):
        with pytest.raises(InvalidToken):
            Fernet(other).decrypt(token)

    # All keys decrypt: payloads made before a rotation still read.
    for key in (first, second, third):
        assert cipher.decrypt(Fernet(key).encrypt(b"old")) == b"old"
    assert "keys=3" in repr(cipher)


def test_rotation_new_primary_still_reads_old_payloads(tmp_path: Path) -> None:
    old = generate_key()
    before = TokenCipher.from_file(_key_file(tmp_path / "k", old.decode() + "\n"))
    payload = before.encrypt_json({"access_token": "x"})

    new = generate_key()
    after = TokenCipher.from_file(_key_file(tmp_path / "k", f"{new.decode()}\n{old.decode()}\n"))
    assert after.decrypt_json(payload) == {"access_token": "x"}
    fresh = after.encrypt_json({"access_token": "y"})
    # A consumer that has not yet reloaded the key file cannot read the new primary's payload,
    # which is why rotate-key keeps the old key as a second line.
    with pytest.raises(CryptoError):
        before.decrypt_json(fresh)


def test_malformed_line_names_its_number_and_does_not_echo_it(tmp_path: Path) -> None:
    secretish = "sUp3rS3cretButBrokenKeyMaterial"
    text = f"# keys\n{generate_key().decode()}\n\n{secretish}\n"
    path = _key_file(tmp_path / "fernet.key", text)
    with pytest.raises(CryptoError) as caught:
        TokenCipher.from_file(path)
    message = str(caught.value)
    assert "line 4" in message
    assert str(path) in message
    assert secretish not in message
    assert secretish not in "".join(traceback.format_exception(caught.value))


def test_truncated_key_is_malformed(tmp_path: Path) -> None:
    key = generate_key().decode()
    path = _key_file(tmp_path / "fernet.key", key[:-5] + "\n")
    with pytest.raises(CryptoError, match="line 1") as caught:
        TokenCipher.from_file(path)
    assert key[:-5] not in str(caught.value)


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(CryptoError) as caught:
        TokenCipher.from_file(path)
    assert "mqtt-tokend keygen" in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank-lines", "comments-only"]
)
def test_key_file_without_keys_is_refused(tmp_path: Path, text: str) -> None:
    path = _key_file(tmp_path / "fernet.key", text)
    with pytest.raises(CryptoError, match="no Fernet key"):
        TokenCipher.from_file(path)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666], ids=oct)
def test_world_accessible_key_file_is_a_config_error_with_the_fix(
    tmp_path: Path, mode: int
) -> None:
    path = _key_file(tmp_path / "fernet.key", generate_key().decode() + "\n", mode)
    with pytest.raises(ConfigError) as caught:
        TokenCipher.from_file(path)
    assert f"sudo chmod o-rwx {path}" in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440], ids=oct)
def test_owner_and_group_key_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path / "fernet.key", generate_key().decode() + "\n", mode)
    TokenCipher.from_file(path)
    check_key_file_mode(path)


def test_write_key_file_creates_0600_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "fernet.key"
    write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    Fernet(lines[0].encode())
    assert "keys=1" in repr(TokenCipher.from_file(path))


def test_write_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "fernet.key"
    write_key_file(path)
    original = path.read_bytes()
    with pytest.raises(CryptoError) as caught:
        write_key_file(path)
    assert "already exists" in str(caught.value)
    assert "rotate-key" in str(caught.value)
    assert path.read_bytes() == original


def test_write_key_file_with_force_replaces_and_tightens(tmp_path: Path) -> None:
    path = _key_file(tmp_path / "fernet.key", generate_key().decode() + "\n", 0o644)
    original = path.read_bytes()
    write_key_file(path, force=True)
    assert path.read_bytes() != original
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    TokenCipher.from_file(path)


def test_decrypt_with_wrong_key_is_crypto_error_without_chained_secrets() -> None:
    key = generate_key()
    payload = TokenCipher([key]).encrypt_json({"access_token": "ACCESS-TOKEN-secret"})
    wrong_key = generate_key()
    stranger = TokenCipher([wrong_key], source="/etc/mqtt-tokend/fernet.key")
    with pytest.raises(CryptoError) as caught:
        stranger.decrypt_json(payload)
    error = caught.value
    assert "/etc/mqtt-tokend/fernet.key" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    text = "".join(traceback.format_exception(error))
    for secret in (key.decode(), wrong_key.decode(), payload, "ACCESS-TOKEN-secret"):
        assert secret not in text


@pytest.mark.parametrize(
    "payload",
    ["", "not-a-fernet-token", "gAAAAAB" + "A" * 80, "ünïcode"],
    ids=["empty", "garbage", "fernet-looking", "non-ascii"],
)
def test_decrypt_garbage_is_crypto_error(payload: str) -> None:
    with pytest.raises(CryptoError):
        TokenCipher([generate_key()]).decrypt(payload)


def test_decrypt_json_of_non_object_is_crypto_error() -> None:
    cipher = TokenCipher([generate_key()])
    with pytest.raises(CryptoError, match="not a JSON object"):
        cipher.decrypt_json(cipher.encrypt(b"[1, 2]"))
    with pytest.raises(CryptoError, match="not JSON"):
        cipher.decrypt_json(cipher.encrypt(b"{broken"))


def test_encrypt_json_round_trip_is_ascii() -> None:
    cipher = TokenCipher([generate_key()])
    token = cipher.encrypt_json({"access_token": "a", "expires_at": 1.5})
    token.encode("ascii")
    assert cipher.decrypt_json(token) == {"access_token": "a", "expires_at": 1.5}
    assert cipher.decrypt_json(token.encode()) == {"access_token": "a", "expires_at": 1.5}


def test_no_keys_is_refused() -> None:
    with pytest.raises(CryptoError):
        TokenCipher([])


def test_repr_shows_no_key(tmp_path: Path) -> None:
    keys = [generate_key(), generate_key()]
    cipher = TokenCipher(keys, source="/etc/mqtt-tokend/fernet.key")
    for text in (repr(cipher), str(cipher)):
        for key in keys:
            assert key.decode() not in text
            assert key.decode()[:16] not in text
    assert "keys=2" in repr(cipher)
