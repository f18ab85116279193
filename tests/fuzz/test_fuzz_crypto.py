"""Fuzzing key files and token payloads: a cipher or CryptoError; a token, None or CryptoError."""

from __future__ import annotations

import base64
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.consumer import Token, decode_token
from mqtt_tokend.errors import ConfigError, CryptoError
from tests.fuzz.profiles import budget
from tests.fuzz.strategies import depths, json_values, nested, numbers, text, truncations

NOW = 1_800_000_000.0
KEYS = [generate_key().decode() for _ in range(3)]
CIPHER = TokenCipher([KEYS[0].encode()])
STRANGER = TokenCipher([generate_key()])

# ---- key files ---------------------------------------------------------------------------

key_lines = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(["", " ", "# a comment", "#", "   # indented comment", "\t"]),
    st.sampled_from(KEYS).map(lambda key: f"  {key}\t"),  # surrounding blanks are fine
    st.sampled_from(KEYS).map(lambda key: key[:-1]),  # one character short
    st.sampled_from(KEYS).map(lambda key: key + "A"),
    st.sampled_from(KEYS).map(lambda key: key.replace("-", "+")),  # not url-safe base64
    st.sampled_from(KEYS).map(lambda key: f"{key} # comment after the key"),
    st.text(st.characters(max_codepoint=127), max_size=60),
    text,
)
key_texts = st.lists(key_lines, max_size=6).map("\n".join) | st.text(max_size=200)
key_bytes = st.one_of(
    key_texts.map(lambda t: t.encode("utf-8")),
    st.binary(max_size=120),
    truncations((KEYS[0] + "\n").encode()),
    st.just("\r\n".join(KEYS).encode()),
    st.just(b"\xef\xbb\xbf" + KEYS[0].encode()),  # a byte order mark from a Windows editor
)


def valid_keys(data: bytes) -> list[str] | None:
    """The keys when the file holds keys, blank lines and comments only (a key or more); else None.

    A key is 32 bytes in url-safe base64 (what follows the padding is ignored, as Fernet does).
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    return keys if keys and all(is_key(key) for key in keys) else None


def is_key(line: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(line.encode("ascii"))) == 32
    except ValueError:  # binascii.Error
        return False


@budget(200, io=True)
@given(data=key_bytes, mode=st.sampled_from([0o600, 0o640, 0o400, 0o644, 0o666, 0o000]))
def test_any_key_file_gives_a_working_cipher_or_a_crypto_error_naming_it(
    data: bytes, mode: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fernet.key"
        path.write_bytes(data)
        path.chmod(mode)
        try:
            cipher = TokenCipher.from_file(path)
        except CryptoError as err:
            assert str(path) in str(err)
            assert valid_keys(data) is None or (os.geteuid() != 0 and not mode & stat.S_IRUSR)
            return
        except ConfigError as err:  # readable by every user: refused on purpose, with the fix
            assert mode & (stat.S_IROTH | stat.S_IWOTH)
            assert str(path) in str(err)
            return
        keys = valid_keys(data)
        assert keys is not None, "a file with something other than keys was accepted"
        assert not mode & (stat.S_IROTH | stat.S_IWOTH)
        for key in keys:  # every key decrypts, the first encrypts
            assert cipher.decrypt(TokenCipher([key.encode()]).encrypt(b"x")) == b"x"
        assert TokenCipher([keys[0].encode()]).decrypt(cipher.encrypt(b"y")) == b"y"


# ---- token payloads from the broker --------------------------------------------------------

times = numbers | st.sampled_from([NOW - 10, NOW + 3600, True, "1800000000"])
token_objects = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.just("fuzz-access") | text | json_values,
        "token_type": st.just("Bearer") | json_values,
        "scope": json_values,
        "expires_at": times,
        "issued_at": times,
        "kind": st.sampled_from(["user", "app"]) | json_values,
    },
)
GOOD = {
    "access_token": "fuzz-access",
    "token_type": "Bearer",
    "scope": "",
    "expires_at": NOW + 3600,
    "issued_at": NOW,
    "kind": "user",
}
SEALED_GOOD = CIPHER.encrypt(json.dumps(GOOD).encode())


def sealed(value: Any, cipher: TokenCipher = CIPHER) -> bytes:
    return cipher.encrypt(json.dumps(value).encode())


payloads = st.one_of(
    st.just(b""),
    st.just(SEALED_GOOD),
    st.binary(max_size=150),
    truncations(SEALED_GOOD),
    st.just(SEALED_GOOD.replace(b"A", b"B", 1)),
    st.just(sealed(GOOD, STRANGER)),
    json_values.map(sealed),
    token_objects.map(sealed),
    depths.map(lambda depth: CIPHER.encrypt(nested(depth))),
    depths.map(lambda depth: CIPHER.encrypt(b'{"access_token": ' + nested(depth) + b"}")),
    st.binary(max_size=150).map(CIPHER.encrypt),
)


@budget(200)
@given(payload=payloads, now=st.sampled_from([NOW, NOW + 3599, NOW + 7200]))
def test_any_payload_decodes_to_a_token_none_or_a_crypto_error(payload: bytes, now: float) -> None:
    try:
        token = decode_token(CIPHER, payload, now=now)
    except CryptoError as err:
        assert str(err).strip()
        assert payload != SEALED_GOOD
        return
    if token is None:
        return
    assert isinstance(token, Token)
    assert isinstance(token.access_token, str) and token.access_token
    assert isinstance(token.expires_at, float)
    assert token.expires_at > now  # an expired token is never handed out
    if payload == SEALED_GOOD:
        assert token.plaintext() == GOOD


@pytest.mark.parametrize("field", ["expires_at", "issued_at"])
def test_a_time_past_a_floats_range_is_a_crypto_error(field: str) -> None:
    payload = sealed(GOOD | {field: 10**400})
    with pytest.raises(CryptoError):
        decode_token(CIPHER, payload, now=NOW)
