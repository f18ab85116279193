"""Headless login, the pasted redirect: the code it carries, the sentence each wrong paste gets,
and the state compared whole (no guess is told apart from another)."""

from __future__ import annotations

import pytest

from mqtt_tokend.core.oauth import (
    PASTE_THIS,
    SAME_LINK,
    code_from_redirect,
    same_state,
    state_digest,
)
from mqtt_tokend.errors import AuthRejected, InputError

STATE = "expected-state-Zx81"
REDIRECT = "http://127.0.0.1:8888/callback"


@pytest.mark.parametrize(
    ("pasted", "code"),
    [
        (f"{REDIRECT}?code=AQBcode-1_x&state={STATE}", "AQBcode-1_x"),
        (f"{REDIRECT}?state={STATE}&code=AQBcode2", "AQBcode2"),
        (f"{REDIRECT}?code=c3&state={STATE}&extra=1&utm_source=x#frag", "c3"),
        (f"  {REDIRECT}?code=c4&state={STATE}\n", "c4"),
        (f"code=c5&state={STATE}", "c5"),
        (f"?code=c6&state={STATE}", "c6"),
        ("AQBbareCode-xyz_123", "AQBbareCode-xyz_123"),
        ("  AQBbareCode\n", "AQBbareCode"),
        (f"http://[::1]:8888/callback?code=c7&state={STATE}", "c7"),
    ],
    ids=[
        "full-url",
        "state-first",
        "extra-params-and-fragment",
        "surrounding-whitespace",
        "query-string-only",
        "query-with-question-mark",
        "bare-code",
        "bare-code-with-whitespace",
        "ipv6-loopback",
    ],
)
def test_code_from_redirect(pasted: str, code: str) -> None:
    assert code_from_redirect(pasted, expected_state=STATE) == code


@pytest.mark.parametrize(
    ("pasted", "expected", "hint"),
    [
        (f"{REDIRECT}?code=c&state=someone-else", InputError, "another login attempt"),
        (f"{REDIRECT}?code=c", InputError, "cut off"),
        (f"{REDIRECT}?error=access_denied&state={STATE}", AuthRejected, "access_denied"),
        ("", InputError, "nothing was pasted"),
        ("   \n", InputError, "nothing was pasted"),
        (f"{REDIRECT}?state={STATE}", InputError, "cut off"),
        (f"{REDIRECT}?code=&state={STATE}", InputError, "cut off"),
    ],
    ids=[
        "state-mismatch",
        "state-missing",
        "access-denied",
        "empty",
        "whitespace-only",
        "no-code",
        "empty-code",
    ],
)
def test_code_from_redirect_refuses(pasted: str, expected: type[Exception], hint: str) -> None:
    with pytest.raises(expected) as caught:
        code_from_redirect(pasted, expected_state=STATE)
    assert type(caught.value) is expected
    assert hint in str(caught.value)


def test_access_denied_is_an_auth_rejection_with_the_error() -> None:
    with pytest.raises(AuthRejected) as caught:
        code_from_redirect(f"{REDIRECT}?error=access_denied&state={STATE}", expected_state=STATE)
    assert caught.value.error == "access_denied"


def test_state_mismatch_does_not_echo_the_code() -> None:
    with pytest.raises(InputError) as caught:
        code_from_redirect(f"{REDIRECT}?code=SECRET-CODE&state=other", expected_state=STATE)
    assert "SECRET-CODE" not in str(caught.value)


# -- wrong pastes get the sentence that fits them (issue 12, item 12) ------------------------


@pytest.mark.parametrize(
    ("pasted", "hint", "then"),
    [
        (
            f"https://accounts.spotify.com/authorize?client_id=c&response_type=code&state={STATE}",
            "this is the login link itself",
            PASTE_THIS,
        ),
        ("https://accounts.spotify.com/authorize", "this is the login link itself", PASTE_THIS),
        (f"{REDIRECT}?code=AQBcode&state={STATE[:5]}", "cut off", SAME_LINK),
        (f"{REDIRECT}?code=AQBcode&sta", "cut off", SAME_LINK),
        (f"{REDIRECT}?code=AQB", "cut off", SAME_LINK),
        ("yes", "not a login address or code", PASTE_THIS),
        ("approved", "not a login address or code", PASTE_THIS),
        ("ok thanks", "not a login address or code", PASTE_THIS),
    ],
    ids=[
        "login-link",
        "login-link-bare",
        "state-cut",
        "state-name-cut",
        "code-cut",
        "yes",
        "approved",
        "words",
    ],
)
def test_a_wrong_paste_is_named_and_says_what_to_paste(pasted: str, hint: str, then: str) -> None:
    with pytest.raises(InputError) as caught:
        code_from_redirect(pasted, expected_state=STATE)
    assert hint in str(caught.value)
    assert str(caught.value).endswith(then)


def _variants(state: str) -> list[str]:
    """States a guesser tries: every prefix, every one-character change, longer ones."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    prefixes = [state[:n] for n in range(len(state))]
    changed = [state[:i] + c + state[i + 1 :] for i in range(len(state)) for c in alphabet[:8]]
    longer = [state + c for c in alphabet[:8]]
    return [v for v in prefixes + changed + longer if v != state]


def test_no_wrong_state_is_told_apart_from_another() -> None:
    """The guessing attack of issue 17: a prefix of the state was refused in other words
    than any other state. Every wrong state now gets one sentence."""
    guesses = _variants(STATE)
    words = set()
    for guess in guesses:
        with pytest.raises(InputError) as caught:
            code_from_redirect(f"{REDIRECT}?code=AQBcode&state={guess}", expected_state=STATE)
        words.add(str(caught.value))
    assert len(guesses) > 150 and len(words) == 1


def test_same_state_compares_the_whole_state() -> None:
    assert same_state(STATE, STATE)
    assert not any(same_state(guess, STATE) for guess in _variants(STATE))


@pytest.mark.parametrize(
    "state", ["", "someone-else", STATE[:-1], STATE + "x"], ids=["none", "other", "short", "long"]
)
def test_an_error_counts_only_with_the_offered_state(state: str) -> None:
    pasted = f"{REDIRECT}?error=Call-555-0100-or-visit-evil.example&state={state}"
    with pytest.raises(InputError) as caught:
        code_from_redirect(pasted, expected_state=STATE)
    assert "Call-555" not in str(caught.value) and "Spotify reported" not in str(caught.value)


def test_an_unknown_error_with_the_offered_state_is_not_repeated() -> None:
    pasted = f"{REDIRECT}?error=Call-555-0100-or-visit-evil.example&state={STATE}"
    with pytest.raises(AuthRejected) as caught:
        code_from_redirect(pasted, expected_state=STATE)
    assert caught.value.error == "error" and "Call-555" not in str(caught.value)
    assert str(caught.value).endswith(SAME_LINK)


def test_an_already_used_redirect_is_named_not_a_new_login() -> None:
    used = f"{REDIRECT}?code=AQBcode&state=finished-login-state"
    for expected in (STATE, None):  # a new login in progress, or none at all
        with pytest.raises(InputError, match="this login was already used"):
            code_from_redirect(
                used, expected_state=expected, used_state=state_digest("finished-login-state")
            )


def test_without_a_login_in_progress_a_redirect_is_refused() -> None:
    with pytest.raises(InputError, match="no login is in progress"):
        code_from_redirect(f"{REDIRECT}?code=AQBcode&state={STATE}", expected_state=None)
