"""The state directory: tokens encrypted at rest, a backup, session and status records.

Every write is atomic and durable: a temporary file in the same directory, fsync, rename,
then fsync of the directory. The tokens file is written before its backup, and both before
anything is published, so a rotated refresh token can never exist only in memory.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.files import atomic_write, signature
from mqtt_tokend.contract.records import (
    SESSION_FIELDS,
    STATUS_FIELDS,
    STATUS_REQUIRED,
    shape_problems,
)
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.core.timing import retry_after_left
from mqtt_tokend.errors import CryptoError, StoreError

_LOG = logging.getLogger(__name__)

TOKENS_FILE = "spotify_tokens.json"
BACKUP_FILE = "spotify_tokens_backup.json"
SESSION_FILE = "spotify_session.json"
STATUS_FILE = "auto_token_status.json"
LOG_FILE = "auto_token.log"
HEALTH_LOG_FILE = "token_health.log"

FORMAT_VERSION = 1


def write_json(
    path: Path, value: dict[str, Any], *, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Atomically write a JSON object."""
    data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    atomic_write(path, data, mode=mode, owner=owner)


def ownership_fix(path: Path) -> str:
    """The exact command that gives a state file back to the owner of its directory (a file
    written by `auth` run as root, for example)."""
    info = path.parent.stat()
    try:
        owner = f"{pwd.getpwuid(info.st_uid).pw_name}:{grp.getgrgid(info.st_gid).gr_name}"
    except KeyError:
        owner = f"{info.st_uid}:{info.st_gid}"
    return f"it is not this user's; give it back with `sudo chown {owner} {path}`"


def read_json(path: Path) -> dict[str, Any] | None:
    """Read a JSON object; None when the file is absent; StoreError when it is not JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except PermissionError as err:
        raise StoreError(f"{path} cannot be read ({err.strerror}): {ownership_fix(path)}") from None
    except OSError as err:
        raise StoreError(f"{path} cannot be read ({err.strerror})") from None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past the stack, not ours
        raise StoreError(f"{path} is not valid JSON (truncated or overwritten?)") from None
    if not isinstance(value, dict):
        raise StoreError(f"{path} does not hold a JSON object")
    return value


PENDING_FILE = "pending_auth.json"


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The agent's last health record (no key needed); None when absent, StoreError if bad."""
    path = state_dir / STATUS_FILE
    record = read_json(path)
    if record is None:
        return None
    problems = shape_problems(record, STATUS_FIELDS, STATUS_REQUIRED)
    if problems:
        raise StoreError(f"{path} is not a health record ({'; '.join(problems)})")
    return record


LOGIN_FILES = (TOKENS_FILE, BACKUP_FILE, SESSION_FILE, PENDING_FILE)
ENCRYPTED_FIELDS = {TOKENS_FILE: "tokens", BACKUP_FILE: "tokens", PENDING_FILE: "secret"}


def reencrypt(state_dir: Path, cipher: TokenCipher) -> list[str]:
    """Re-encrypt the state files with `cipher`'s primary key, before older keys are retired.

    `cipher` must hold the new key and the old ones. A file no key opens, or not ours, is
    left as it is (it is lost already, and the agent keeps it aside). Returns the names
    rewritten; StoreError when the directory or a file cannot be read or written, since
    retiring a key then could lose the login.
    """
    try:
        present = {path.name for path in state_dir.iterdir()}
    except FileNotFoundError:
        return []
    except OSError as err:
        raise StoreError(f"state directory {state_dir} cannot be read ({err.strerror})") from None
    rewritten = []
    for name, key in ENCRYPTED_FIELDS.items():
        if name not in present:
            continue
        path = state_dir / name
        try:
            record = read_json(path)
        except StoreError:
            if os.access(path, os.R_OK):
                continue  # not JSON: unusable already
            raise
        payload = record.get(key) if record is not None else None
        if record is None or not isinstance(payload, str) or cipher.is_primary(payload):
            continue
        try:
            record[key] = cipher.encrypt(cipher.decrypt(payload)).decode("ascii")
        except CryptoError:
            continue
        try:
            info = path.stat()
            mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
            write_json(path, record, mode=mode, owner=owner)
        except OSError as err:
            raise StoreError(f"{path} cannot be re-encrypted ({err.strerror})") from None
        rewritten.append(name)
    return rewritten


def remove_login(state_dir: Path) -> list[Path]:
    """Delete the stored login (tokens, backup, session, a login in progress); no key needed."""
    removed = []
    for name in LOGIN_FILES:
        path = state_dir / name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


class TokenStore:
    """Reads and writes the files of one state directory."""

    def __init__(self, state_dir: Path, *, cipher: TokenCipher) -> None:
        self.state_dir = state_dir
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"TokenStore({str(self.state_dir)!r})"

    def use_cipher(self, cipher: TokenCipher) -> None:
        """Encrypt with new keys from now on (after a key rotation)."""
        self._cipher = cipher

    def load_backup(self) -> Tokens | None:
        """The backup tokens alone, or None when absent or unusable."""
        try:
            return self._read_tokens(self.path(BACKUP_FILE))
        except (StoreError, CryptoError) as err:
            _LOG.warning("%s", err)
            return None

    def path(self, name: str) -> Path:
        """Path of one of the state files."""
        return self.state_dir / name

    def ensure_dir(self) -> None:
        """Create the state directory, private to its owner."""
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"state directory {self.state_dir} cannot be created ({err.strerror})"
            ) from None
        if not os.access(self.state_dir, os.W_OK | os.X_OK):
            raise StoreError(f"state directory {self.state_dir} is not writable by this user")

    def load(self) -> Tokens | None:
        """The newest readable tokens: the main file, else the backup; None if neither exists.

        A corrupt main file is kept (renamed aside), never deleted, and the backup is used.
        """
        problems: list[str] = []
        for name in (TOKENS_FILE, BACKUP_FILE):
            try:
                tokens = self._read_tokens(self.path(name))
            except (StoreError, CryptoError) as err:
                problems.append(str(err))
                _LOG.warning("%s", err)
                continue
            if tokens is None:
                continue
            if name == BACKUP_FILE:
                _LOG.warning("using the backup tokens; the main token file was missing or unusable")
                self.keep_aside(TOKENS_FILE)
                self.save(tokens)
            return tokens
        if problems:
            fix = "Restore the key file that wrote them, or log in again with `mqtt-tokend auth`"
            if all("sudo chown" in problem for problem in problems):
                fix = "Then restart the agent"
            raise StoreError("; ".join(problems) + f". Nothing was deleted. {fix}")
        return None

    def save(self, tokens: Tokens) -> None:
        """Write the tokens, then the backup; both durable before this returns."""
        self.ensure_dir()
        record = {"version": FORMAT_VERSION, "tokens": self._cipher.encrypt_json(asdict(tokens))}
        for name in (TOKENS_FILE, BACKUP_FILE):
            write_json(self.path(name), record)

    def tokens_signature(self) -> tuple[int, int, int] | None:
        """Identity of the tokens file (inode, size, mtime) to notice a login by another process."""
        return signature(self.path(TOKENS_FILE))

    def load_session(self) -> dict[str, Any]:
        """The non-secret session record; empty when absent, or unusable (then kept aside)."""
        path = self.path(SESSION_FILE)
        try:
            session = read_json(path) or {}
        except StoreError as err:
            problem = str(err)
        else:
            problems = shape_problems(session, SESSION_FIELDS, ())
            if not problems:
                return session
            problem = f"{path} is not a session record ({'; '.join(problems)})"
        _LOG.warning("%s; starting a new session record", problem)
        # A directory or a device in its place is the operator's to move; a file of another
        # user is not corrupt, and stays where the chown in the warning names it.
        if path.is_file() and os.access(path, os.R_OK):
            self.keep_aside(SESSION_FILE)
        return {}

    def save_session(self, session: dict[str, Any]) -> None:
        """Write the non-secret session record."""
        self.ensure_dir()
        write_json(self.path(SESSION_FILE), session)

    def remember_retry_after(self, until: float | None) -> None:
        """Keep the end of Spotify's Retry-After (None: none holds) in the session record."""
        self.save_session(self.load_session() | {"retry_after_until": until})

    def retry_after_until(self, now: float) -> float | None:
        """The end of a Retry-After kept from before a restart, if it still holds (capped)."""
        left = retry_after_left(self.load_session().get("retry_after_until"), now)
        return None if left is None else now + left

    def save_status(self, status: dict[str, Any]) -> None:
        """Write the health record (no secrets in it)."""
        self.ensure_dir()
        write_json(self.path(STATUS_FILE), status, mode=0o640)

    def _read_tokens(self, path: Path) -> Tokens | None:
        record = read_json(path)
        if record is None:
            return None
        if record.get("version") != FORMAT_VERSION or not isinstance(record.get("tokens"), str):
            raise StoreError(f"{path} is not a token file of this version")
        try:
            data = self._cipher.decrypt_json(record["tokens"])
        except CryptoError:
            raise CryptoError(
                f"{path} does not decrypt with the keys in {self._cipher.source}"
            ) from None
        try:
            return Tokens.from_dict(data)
        except StoreError as err:
            raise StoreError(f"{path}: {err}") from None

    def keep_aside(self, name: str) -> None:
        """Rename an unusable state file to NAME.corrupt (never delete what may be evidence)."""
        path = self.path(name)
        aside, number = path.with_name(f"{name}.corrupt"), 1
        while aside.exists():  # an older unusable copy is kept too
            number += 1
            aside = path.with_name(f"{name}.{number}.corrupt")
        try:
            path.replace(aside)
        except FileNotFoundError:
            return
        except OSError as err:
            _LOG.warning("cannot keep the unusable %s aside (%s)", name, err.strerror)
            return
        _LOG.warning("kept the unusable %s as %s", name, aside.name)
