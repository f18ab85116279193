"""OAuth 2.0 helpers with no I/O: the PKCE pair (RFC 7636), and reading the redirect a person
pastes after approving a login (RFC 6749, 4.1.2), with its `state` compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from mqtt_tokend.errors import AuthRejected, InputError


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved alphabet
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


_CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MIN_CODE_LENGTH = 10  # Spotify's codes run to hundreds of characters; "yes" is not one


def _looks_like_code(text: str) -> bool:
    """Long enough, of the URL-safe alphabet, and mixed case: not "yes", "ok" or "approved"."""
    return (
        len(text) >= MIN_CODE_LENGTH
        and set(text) <= _CODE_ALPHABET
        and any(c.isupper() for c in text)
        and any(c.islower() or c.isdigit() for c in text)
    )


PASTE_THIS = (
    "paste the whole address your browser was sent to after you approved (it starts with the "
    "redirect URI and holds code= and state=)"
)


def state_digest(state: str) -> str:
    """What is kept of a finished login's `state`, to recognise its redirect if pasted again."""
    return hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()[:32]


def same_state(pasted: str, expected: str) -> bool:
    """The whole pasted state against the offered one, in constant time: both are hashed
    first, so the comparison sees equal lengths and says nothing about a prefix."""
    return hmac.compare_digest(
        hashlib.sha256(pasted.encode("utf-8", "replace")).digest(),
        hashlib.sha256(expected.encode("utf-8", "replace")).digest(),
    )


# The `error` values of RFC 6749 (4.1.2.1) that Spotify may send back; anything else is
# named only as "an error", so no text of a stranger's is ever repeated.
OAUTH_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "unauthorized_client",
        "unsupported_response_type",
    }
)


def oauth_error(text: str) -> str:
    """An `error=` value as the product may repeat it: a known OAuth error, else "error"."""
    return text if text in OAUTH_ERRORS else "error"


SAME_LINK = (
    "the same login link stays valid: open it, approve, and paste the whole address it leads "
    "to with `mqtt-tokend auth --redirect-file -`"
)


def code_from_redirect(
    text: str,
    *,
    expected_state: str | None,
    used_state: str | None = None,
    bare_code: bool = True,
) -> str:
    """The authorization code from the pasted redirect URL (checking `state`), or a bare code
    where `bare_code` allows one (the terminal; never over MQTT, where only the offered
    login's state is accepted).

    `expected_state`: the login in progress (None when there is none); `used_state`: the
    `state_digest` of the last finished login, so its redirect pasted again is named as such.
    The state is compared whole, in constant time, before anything is said about it; an
    `error=` counts only with the expected state. The sentences name what was pasted, never
    how close a state came (over MQTT every refusal is one sentence: `RemoteLogin`).
    """
    text = text.strip()
    if not text:
        raise InputError(f"nothing was pasted: {PASTE_THIS}")
    if "=" not in text and "/" not in text and "?" not in text:
        if not bare_code:
            raise InputError(f"a bare code is not accepted here: {PASTE_THIS}")
        if not _looks_like_code(text):
            raise InputError(f"the pasted text is not a login address or code: {PASTE_THIS}")
        return text  # a bare code
    query = urlsplit(text).query if "?" in text else text
    params = parse_qs(query)
    if urlsplit(text).path.rstrip("/").endswith("/authorize") or "response_type" in params:
        raise InputError(
            f"this is the login link itself: open it in a browser, approve, and then {PASTE_THIS}"
        )
    if len(params.get("state", [])) > 1 or len(params.get("code", [])) > 1:
        raise InputError("the pasted address has more than one state or code: paste it as is")
    state = params.get("state", [""])[0]
    codes = params.get("code", [])
    matches = expected_state is not None and same_state(state, expected_state)
    if matches and "error" in params:
        error = oauth_error(params["error"][0])
        raise AuthRejected(
            f"Spotify reported {error}: the login was not approved; {SAME_LINK}", error=error
        )
    if state and used_state and secrets.compare_digest(state_digest(state), used_state):
        raise InputError(
            "this login was already used: its tokens are stored. To log in again, open a new "
            "login link and paste the address that one leads to"
        )
    if expected_state is None:
        raise InputError(
            "no login is in progress for this address (it expired or was started elsewhere): "
            "start a new login, open its link, and paste the address it leads to"
        )
    if not matches or not codes or not codes[0]:
        raise InputError(
            f"the pasted address is cut off, or belongs to another login attempt: {SAME_LINK}"
        )
    return codes[0]
