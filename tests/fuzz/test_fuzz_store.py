"""Fuzzing the state files: a bad file is reported by name or passed over, and never lost.

Each example builds a state directory (token file, backup, an older `.corrupt` copy, session,
status, a login in progress), reads it back through the store, and compares the directory
before and after: the only change allowed is a bad token file renamed aside and rewritten
from the backup.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import (
    BACKUP_FILE,
    SESSION_FILE,
    STATUS_FILE,
    TOKENS_FILE,
    Tokens,
    read_status,
)
from mqtt_tokend.contract.records import SESSION_FIELDS, shape_problems
from mqtt_tokend.errors import CryptoError, StoreError
from tests.fuzz.profiles import budget
from tests.fuzz.state_files import (
    CIPHER,
    DROP,
    IS_DIR,
    STRANGER,
    T0,
    listing,
    names_file,
    nothing_lost,
    put,
    state_dir,
)
from tests.fuzz.strategies import deep_json, depths, dumps, json_values, nested, truncations

MAIN = Tokens(
    access_token="fuzz-access-main",
    refresh_token="fuzz-refresh-main",
    expires_at=T0 + 3600,
    scope="user-read-playback-state",
    issued_at=T0,
    authorized_at=T0 - 86400,
)
BACKUP = Tokens(
    access_token="fuzz-access-backup",
    refresh_token="fuzz-refresh-backup",
    expires_at=T0 + 1800,
    scope="",
    issued_at=T0 - 1800,
    authorized_at=T0 - 86400,
)
TOKEN_FIELDS = list(asdict(MAIN))


@dataclass(frozen=True)
class Content:
    """What a state file holds (None: absent), and the tokens it stands for (None: unusable)."""

    data: bytes | None
    tokens: Tokens | None = None


# ---- token files -------------------------------------------------------------------------


def token_file(plain: Any, *, cipher: TokenCipher = CIPHER, version: Any = 1) -> bytes:
    """A token file as the store writes it, around any plaintext."""
    sealed = cipher.encrypt(json.dumps(plain).encode()).decode()
    record = {"version": version, "tokens": sealed}
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def tokens_in(plain: Any) -> Tokens | None:
    """The tokens a decrypted record stands for, or None when it is not a usable record."""
    if not isinstance(plain, dict):
        return None
    texts = {"access_token": None, "refresh_token": None, "scope": "", "token_type": "Bearer"}
    values: dict[str, Any] = {}
    for key, default in texts.items():
        value = plain.get(key, default)
        if not isinstance(value, str) or (default is None and not value):
            return None
        values[key] = value
    for key in ("expires_at", "issued_at", "authorized_at"):
        if not finite(plain.get(key)):
            return None
        values[key] = float(plain[key])
    return Tokens(**values)


def edited(tokens: Tokens, changes: dict[str, Any]) -> dict[str, Any]:
    plain = asdict(tokens)
    for key, value in changes.items():
        if value is DROP:
            plain.pop(key, None)
        else:
            plain[key] = value
    return plain


def truncated_file(tokens: Tokens) -> st.SearchStrategy[Content]:
    whole = token_file(asdict(tokens))
    return truncations(whole).map(
        lambda cut: Content(cut, tokens if cut.strip() == whole.strip() else None)
    )


def token_contents(tokens: Tokens) -> st.SearchStrategy[Content]:
    """The good file for `tokens`, and every way of spoiling it."""
    good = token_file(asdict(tokens))
    changes = st.dictionaries(st.sampled_from(TOKEN_FIELDS), json_values | st.just(DROP))
    return st.one_of(
        st.just(Content(good, tokens)),
        truncated_file(tokens),
        st.binary(max_size=120).map(Content),
        json_values.map(lambda value: Content(dumps(value))),
        deep_json.map(Content),
        st.just(Content(IS_DIR)),
        json_values.map(
            lambda v: Content(token_file(asdict(tokens), version=v), tokens if v == 1 else None)
        ),
        st.just(Content(token_file(asdict(tokens), cipher=STRANGER))),
        json_values.map(sealed_record),
        changes.map(lambda c: edited(tokens, c)).map(sealed_record),
        depths.map(lambda depth: Content(sealed_file(nested(depth)))),
        json_values.map(lambda value: Content(dumps({"version": 1, "tokens": value}))),
    )


def sealed_record(plain: Any) -> Content:
    """A token file around any decrypted record, and the tokens it stands for."""
    return Content(token_file(plain), tokens_in(plain))


def sealed_file(plaintext: bytes) -> bytes:
    """A token file whose ciphertext is valid but holds any bytes at all."""
    record = {"version": 1, "tokens": CIPHER.encrypt(plaintext).decode()}
    return json.dumps(record).encode()


absent = st.just(Content(None))


# ---- the properties ----------------------------------------------------------------------


@budget(150, io=True)
@given(
    main=absent | token_contents(MAIN),
    backup=absent | token_contents(BACKUP) | token_contents(MAIN),
    older_corrupt=st.booleans(),
)
def test_load_returns_the_good_tokens_or_names_the_bad_file_and_loses_nothing(
    main: Content, backup: Content, older_corrupt: bool
) -> None:
    with state_dir() as (directory, store):
        put(directory, TOKENS_FILE, main.data)
        put(directory, BACKUP_FILE, backup.data)
        if older_corrupt:
            put(directory, f"{TOKENS_FILE}.corrupt", b"an older corrupt token file, kept")
        before = listing(directory)
        main_path, backup_path = store.path(TOKENS_FILE), store.path(BACKUP_FILE)

        try:
            loaded = store.load()
        except (StoreError, CryptoError) as err:
            assert main.tokens is None
            assert backup.tokens is None
            assert main.data is not None or backup.data is not None
            if main.data is not None:
                names_file(err, main_path)
            if backup.data is not None:
                names_file(err, backup_path)
            assert listing(directory) == before
            return

        if main.tokens is not None:
            assert loaded == main.tokens
            assert listing(directory) == before
        elif backup.tokens is not None:
            assert loaded == backup.tokens
            after = listing(directory)
            nothing_lost(before, after, rewritten={BACKUP_FILE})
            aside = [name for name in set(after) - set(before) if name.endswith(".corrupt")]
            if main.data is None:
                assert aside == []
            else:  # the bad main file, renamed aside whole
                assert len(aside) == 1
                assert after[aside[0]] == main.data
            assert store.load() == backup.tokens  # the main file was rewritten from the backup
            assert store.load_backup() == backup.tokens
        else:
            assert loaded is None
            assert main.data is None
            assert backup.data is None
            assert listing(directory) == before


def json_record_contents(good: dict[str, Any]) -> st.SearchStrategy[bytes]:
    whole = (json.dumps(good, indent=2) + "\n").encode()
    return st.one_of(
        st.just(whole),
        truncations(whole),
        st.binary(max_size=120),
        json_values.map(dumps),
        deep_json,
        deep_json.map(lambda nested: b'{"a": ' + nested + b"}"),
        st.just(IS_DIR),
    )


def as_record(data: bytes) -> dict[str, Any] | None:
    """The JSON object a session or status file holds, or None when it holds none."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


SESSION = {"display_name": "Demo User", "last_refresh": T0, "reauth_warned": [T0 + 86400]}
STATUS = {"state": "ok", "expires_at": T0 + 3600, "message": "token refreshed"}


@budget(150, io=True)
@given(
    session=st.none() | json_record_contents(SESSION),
    status=st.none() | json_record_contents(STATUS),
)
def test_session_and_status_files_are_read_or_reported_by_name(
    session: bytes | None, status: bytes | None
) -> None:
    with state_dir() as (directory, store):
        put(directory, SESSION_FILE, session)
        put(directory, STATUS_FILE, status)
        before = listing(directory)

        record = as_record(session) if session not in (None, IS_DIR) else None
        usable = record is not None and not shape_problems(record, SESSION_FIELDS, ())
        assert store.load_session() == (record if usable else {})  # a bad one starts afresh
        if session not in (None, IS_DIR) and not usable:  # kept aside, byte for byte
            before[f"{SESSION_FILE}.corrupt"] = before.pop(SESSION_FILE)

        try:
            loaded = read_status(store.state_dir)
        except StoreError as err:
            assert status is not None
            names_file(err, store.path(STATUS_FILE))
        else:
            if status is None:
                assert loaded is None
            else:
                assert loaded == as_record(status)
                assert loaded is not None
        assert listing(directory) == before
