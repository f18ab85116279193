"""Fuzzing a login in progress (`pending_auth.json`): well formed, or None and kept aside."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mqtt_tokend.adapters import login as auth
from mqtt_tokend.adapters.store import PENDING_FILE
from tests.fuzz.profiles import budget
from tests.fuzz.state_files import CIPHER, DROP, STRANGER, T0, listing, put, state_dir
from tests.fuzz.strategies import deep_json, dumps, json_values, truncations

AUTHORIZATION = auth.Authorization(
    url="https://accounts.fuzz/authorize?state=fuzz-state",
    redirect_uri="http://127.0.0.1:8888/callback",
    created_at=T0,
    state="fuzz-state",
    code_verifier="fuzz-verifier",
)
PENDING_FIELDS = ["redirect_uri", "created_at", "secret"]
SECRET_FIELDS = ["url", "state", "code_verifier"]


def pending_file(record_changes: dict[str, Any], secret_changes: dict[str, Any], key: str) -> bytes:
    secret = {
        "state": AUTHORIZATION.state,
        "code_verifier": AUTHORIZATION.code_verifier,
        "url": AUTHORIZATION.url,
    }
    for name, value in secret_changes.items():
        if value is DROP:
            secret.pop(name, None)
        else:
            secret[name] = value
    cipher = CIPHER if key == "ours" else STRANGER
    record: dict[str, Any] = {
        "redirect_uri": AUTHORIZATION.redirect_uri,
        "created_at": AUTHORIZATION.created_at,
        "secret": cipher.encrypt_json(secret),
    }
    for name, value in record_changes.items():
        if value is DROP:
            record.pop(name, None)
        else:
            record[name] = value
    return dumps(record)


VALID_PENDING = pending_file({}, {}, "ours")
pending_contents = st.one_of(
    st.just(VALID_PENDING),
    truncations(VALID_PENDING),
    st.binary(max_size=120),
    json_values.map(dumps),
    deep_json,
    st.builds(
        pending_file,
        st.dictionaries(st.sampled_from(PENDING_FIELDS), json_values | st.just(DROP)),
        st.dictionaries(st.sampled_from(SECRET_FIELDS), json_values | st.just(DROP)),
        st.sampled_from(["ours", "stranger"]),
    ),
)


@budget(150, io=True)
@given(content=pending_contents, age=st.sampled_from([0.0, 10.0, auth.PENDING_MAX_AGE + 1]))
def test_a_login_in_progress_is_well_formed_or_none(content: bytes, age: float) -> None:
    with state_dir() as (directory, store):
        put(directory, PENDING_FILE, content)
        before = listing(directory)

        pending = auth.load_pending(store, CIPHER, now=T0 + age)

        if pending is not None:
            assert isinstance(pending.url, str)
            assert isinstance(pending.redirect_uri, str)
            assert isinstance(pending.state, str)
            assert pending.code_verifier is None or isinstance(pending.code_verifier, str)
            assert isinstance(pending.created_at, float)
            assert math.isfinite(pending.created_at)
            assert T0 + age - pending.created_at <= auth.PENDING_MAX_AGE
        if content == VALID_PENDING:
            assert pending == (AUTHORIZATION if age <= auth.PENDING_MAX_AGE else None)
        after = listing(directory)
        if after != before:  # an unusable login in progress is kept aside, byte for byte
            assert pending is None
            before[f"{PENDING_FILE}.corrupt"] = before.pop(PENDING_FILE)
        assert after == before
