"""Fernet keys: the key file, encryption of tokens for the broker and for the disk."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mqtt_tokend.adapters.files import atomic_write
from mqtt_tokend.errors import ConfigError, CryptoError


def generate_key() -> bytes:
    """Return a new url-safe base64 Fernet key."""
    return Fernet.generate_key()


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that anyone outside its owner and group can read or write."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absence is reported by the reader, with its own fix
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"{path}: the key file is readable or writable by every user on this machine; "
            f"fix it with: sudo chmod o-rwx {path}"
        )


class TokenCipher:
    """MultiFernet over the keys of one key file: the first key encrypts, all decrypt."""

    def __init__(self, keys: Sequence[bytes], *, source: str = "the key file") -> None:
        if not keys:
            raise CryptoError(f"{source} holds no Fernet key")
        self._primary = Fernet(keys[0])
        self._fernet = MultiFernet([self._primary, *(Fernet(key) for key in keys[1:])])
        self._count = len(keys)
        self.source = source

    def __repr__(self) -> str:
        return f"TokenCipher(keys={self._count}, source={self.source!r})"

    @classmethod
    def from_file(cls, path: Path) -> TokenCipher:
        """Read a key file: one Fernet key a line, blank lines and `#` comments ignored."""
        return cls(read_key_file(path), source=str(path))

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt with the primary key."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes | str) -> bytes:
        """Decrypt with any key, or raise CryptoError saying which key file failed."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        try:
            return self._fernet.decrypt(raw)
        except InvalidToken:
            raise CryptoError(
                f"payload does not decrypt with any key in {self.source} "
                "(wrong key, a rotated-out key, or not a Fernet token)"
            ) from None

    def encrypt_json(self, value: dict[str, Any]) -> str:
        """Encrypt a JSON object; the result is ASCII."""
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode("ascii")

    def is_primary(self, token: bytes | str) -> bool:
        """True when the primary key (the first of the file) made this Fernet token."""
        raw = token.encode("ascii", "replace") if isinstance(token, str) else token
        try:
            self._primary.decrypt(raw)
        except InvalidToken:
            return False
        return True

    def decrypt_json(self, token: bytes | str) -> dict[str, Any]:
        """Decrypt a Fernet token holding a JSON object."""
        plain = self.decrypt(token)
        try:
            value = json.loads(plain)
        except (ValueError, RecursionError):  # RecursionError: nested past the stack
            raise CryptoError("decrypted payload is not JSON") from None
        if not isinstance(value, dict):
            raise CryptoError("decrypted payload is not a JSON object")
        return value


def read_key_file(path: Path) -> list[bytes]:
    """The keys of a key file, primary first; CryptoError saying what is wrong and the fix."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise CryptoError(
            f"key file {path} not found: create it with `mqtt-tokend keygen`"
        ) from None
    except PermissionError:
        raise CryptoError(
            f"key file {path} is not readable by this user: run as the service user "
            "or add this user to its group"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CryptoError(f"key file {path} cannot be read ({type(err).__name__})") from None
    check_key_file_mode(path)
    keys: list[bytes] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            Fernet(line.encode("ascii"))
        except (ValueError, TypeError):
            raise CryptoError(
                f"key file {path}, line {number}: not a Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
        keys.append(line.encode("ascii"))
    if not keys:
        raise CryptoError(f"key file {path} holds no Fernet key: run `mqtt-tokend keygen --force`")
    return keys


def rotate_key_file(
    path: Path,
    *,
    keep: int | None = None,
    before_retiring: Callable[[TokenCipher], None] | None = None,
) -> int:
    """Put a new primary key first, keeping the old ones (at most `keep` keys in all).

    The file is replaced atomically with the same mode, owner and group, so consumers that
    read it keep their access. Returns how many keys it now holds.

    When keys are to be retired, the file first holds the new key and every old one, and
    `before_retiring` is called with that full set: it re-encrypts what the old keys still
    protect (raising stops the rotation with nothing retired). It is called again once they
    are gone, to catch a file an agent rewrote with an old key in between.
    """
    if keep is not None and keep < 1:
        raise CryptoError("--keep must be at least 1 (the new key)")
    keys = [generate_key(), *read_key_file(path)]
    retiring = keep is not None and len(keys) > keep
    if retiring and before_retiring is not None:
        _replace_keeping_owner(path, b"".join(key + b"\n" for key in keys))
        before_retiring(TokenCipher(keys, source=str(path)))
    kept = keys if keep is None else keys[:keep]
    _replace_keeping_owner(path, b"".join(key + b"\n" for key in kept))
    if retiring and before_retiring is not None:
        before_retiring(TokenCipher(keys, source=str(path)))
    return len(kept)


def _replace_keeping_owner(path: Path, data: bytes) -> None:
    """Atomically replace `path`: temp file, same mode/owner/group, fsync, rename, fsync dir."""
    try:
        _replace(path, data)
    except PermissionError:
        raise CryptoError(
            f"cannot replace {path} keeping its owner and group (permission denied): "
            "run this as the key file's owner or as root"
        ) from None
    except OSError as err:
        raise CryptoError(f"cannot replace {path}: {err.strerror or err}") from None


def _replace(path: Path, data: bytes) -> None:
    before = path.stat()
    atomic_write(
        path, data, mode=stat.S_IMODE(before.st_mode), owner=(before.st_uid, before.st_gid)
    )


def write_key_file(path: Path, *, force: bool = False) -> None:
    """Create a key file (0600) with one new key; never overwrite one unless forced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise CryptoError(
            f"key file {path} already exists; consumers hold it. "
            "Use `mqtt-tokend rotate-key` to add a key, or --force to replace it"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o600)
