"""The login on disk as the agent sees it: the token file and its backup, the session record,
and the key file, with what changed since the agent last read or wrote them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.files import reserve as reserve_space
from mqtt_tokend.adapters.files import signature as file_signature
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.core.timing import reauth_warnings_due
from mqtt_tokend.errors import StoreError, TokendError

_LOG = logging.getLogger(__name__)

RESERVE_FILE = ".write-reserve"
RESERVE_BYTES = 64 * 1024  # far more than the token file, its backup and a temporary copy


class TokenFiles:
    """Reads and writes through the store, and notices a new login or a rotated key."""

    def __init__(
        self,
        *,
        store: TokenStore,
        key_file: Path,
        on_new_key: Callable[[TokenCipher], None] | None = None,
    ) -> None:
        self._store = store
        self._key_file = key_file
        self._on_new_key = on_new_key  # who else encrypts with the key: the MQTT output
        self._key_signature = file_signature(key_file)
        self._tokens_signature: tuple[int, int, int] | None = None
        self._reminded: set[float] = set()  # reauth_soon thresholds already announced

    def load(self) -> Tokens | None:
        """The stored login (None when there is none); StoreError or CryptoError when unusable."""
        try:
            return self._store.load()
        finally:
            self._tokens_signature = self._store.tokens_signature()

    @property
    def state_dir(self) -> Path:
        """Where the login is kept."""
        return self._store.state_dir

    def reserve(self) -> str | None:
        """Set aside the space to save a rotated refresh token; the reason when there is none.

        Called before any call that may rotate the refresh token: `release` hands the space
        back for the save that follows, so a disk filled meanwhile cannot lose the rotation.
        """
        try:
            reserve_space(self._store.path(RESERVE_FILE), RESERVE_BYTES)
        except OSError as err:
            _LOG.error("cannot write to the state directory %s: %s", self.state_dir, err)
            return err.strerror or str(err)
        return None

    def release(self) -> None:
        """Hand the reserved space back (just before the save it was kept for)."""
        try:
            self._store.path(RESERVE_FILE).unlink(missing_ok=True)
        except OSError as err:
            _LOG.warning("cannot remove %s: %s", RESERVE_FILE, err)

    def retry_after_until(self, now: float) -> float | None:
        """The stored end of a Retry-After still in force."""
        return self._store.retry_after_until(now)

    def load_backup(self) -> Tokens | None:
        """The backup copy of the login, if it can be read."""
        return self._store.load_backup()

    def save(self, tokens: Tokens) -> str | None:
        """Write the tokens; the reason as text when the state directory cannot be written."""
        try:
            self._store.save(tokens)
        except (StoreError, OSError) as err:
            _LOG.error("cannot write the tokens to %s: %s", self._store.state_dir, err)
            return str(err)
        self._tokens_signature = self._store.tokens_signature()
        return None

    def login_changed(self) -> bool:
        """Someone else (`auth`, the dashboard) wrote the token file since we last touched it."""
        signature = self._store.tokens_signature()
        return signature is not None and signature != self._tokens_signature

    def key_rotated(self) -> bool:
        """The key file changed and is usable: the store now encrypts with its primary key."""
        signature = file_signature(self._key_file)
        if signature == self._key_signature:
            return False
        self._key_signature = signature
        try:
            cipher = TokenCipher.from_file(self._key_file)
        except TokendError as err:
            _LOG.error("the key file changed but cannot be used (%s); keeping the old keys", err)
            return False
        _LOG.info("the key file changed; re-encrypting with the new primary key")
        self._store.use_cipher(cipher)
        if self._on_new_key is not None:
            self._on_new_key(cipher)
        return True

    def load_session(self) -> dict[str, Any]:
        """The session record (user, last refresh); remembers the reminders already sent."""
        session = self._store.load_session()
        self._reminded = {float(d) for d in session.get("reauth_warned", [])}
        return session

    def reminder_due(
        self, now: float, reauth_by: float | None, *, warn_days: tuple[float, ...]
    ) -> bool:
        """True once for each threshold before `reauth_by`; recorded before it is announced."""
        due = reauth_warnings_due(now, reauth_by, warn_days=warn_days, sent=self._reminded)
        if not due or reauth_by is None:
            return False
        self._reminded.update(due)
        self.update_session(reauth_warned=sorted(self._reminded))
        return True

    def remember_retry_after(self, until: float | None) -> None:
        """Keep the end of Spotify's Retry-After across a restart (None: none holds); a failure
        is only logged."""
        try:
            self._store.remember_retry_after(until)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the session record: %s", err)

    def update_session(self, **changes: Any) -> None:
        """Change some fields of the session record; a failure is only logged."""
        session = self._store.load_session() | changes
        try:
            self._store.save_session(session)
        except (StoreError, OSError) as err:
            _LOG.warning("cannot write the session record: %s", err)
