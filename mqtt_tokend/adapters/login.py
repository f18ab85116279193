"""Headless authorization: PKCE (or client secret), the pasted redirect, the login in progress.

A login in progress (state and PKCE verifier) is kept encrypted in the state directory, so
the URL can be printed by one command and the redirect pasted into another.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.spotify import TokenGrant
from mqtt_tokend.adapters.store import PENDING_FILE, Tokens, TokenStore, read_json, write_json
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.errors import AuthRejected, CryptoError, InputError, StoreError, TokendError

_LOG = logging.getLogger(__name__)

PENDING_MAX_AGE = 3600.0


class LoginSpotify(Protocol):
    """What a login needs from the Spotify client (`SpotifyClient`, or a test's fake)."""

    @property
    def client_id(self) -> str:
        """The app's client id."""
        ...

    @property
    def confidential(self) -> bool:
        """True when a client secret is configured."""
        ...

    def authorize_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        scopes: Iterable[str],
        code_challenge: str | None = None,
    ) -> str:
        """The URL a person opens to approve access."""
        ...

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenGrant:
        """Trade an authorization code for tokens."""
        ...

    def me(self, access_token: str) -> dict[str, Any]:
        """The user's profile."""
        ...


@dataclass(frozen=True)
class Authorization:
    """One login attempt: the URL to open and what is needed to finish it.

    Its repr shows only when it was made: the URL carries the state, and the redirect URI
    may carry a Home Assistant webhook id.
    """

    url: str = field(repr=False)
    redirect_uri: str = field(repr=False)
    created_at: float
    state: str = field(repr=False)
    code_verifier: str | None = field(default=None, repr=False)


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved alphabet
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def begin(spotify: LoginSpotify, config: SpotifyConfig, *, now: float) -> Authorization:
    """Start a login: PKCE for a public client, the plain code flow with a client secret."""
    state = secrets.token_urlsafe(16)  # 128 bits; short, for Home Assistant's 255-char text
    verifier: str | None = None
    challenge: str | None = None
    if not spotify.confidential:
        verifier, challenge = pkce_pair()
    url = spotify.authorize_url(
        redirect_uri=config.redirect_uri,
        state=state,
        scopes=config.scopes,
        code_challenge=challenge,
    )
    return Authorization(
        url=url,
        redirect_uri=config.redirect_uri,
        created_at=now,
        state=state,
        code_verifier=verifier,
    )


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


def complete(
    authorization: Authorization,
    code: str,
    *,
    spotify: LoginSpotify,
    store: TokenStore,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Exchange the code, store the tokens, confirm the user; return the user's profile."""
    logsafe.remember(authorization.code_verifier)
    try:
        grant = spotify.exchange_code(
            code=code,
            redirect_uri=authorization.redirect_uri,
            code_verifier=authorization.code_verifier,
        )
    except AuthRejected as err:  # a wrong or used code: the login in progress still stands
        raise AuthRejected(
            f"{err}: {SAME_LINK}", error=err.error, description=err.description
        ) from None
    logsafe.remember(code)  # only a code that worked: junk codes must not crowd out secrets
    issued = now()
    tokens = Tokens(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token or "",
        expires_at=issued + grant.expires_in,
        scope=grant.scope,
        issued_at=issued,
        authorized_at=issued,
    )
    store.save(tokens)
    profile: dict[str, Any] = {}
    with contextlib.suppress(TokendError):  # the login is stored; the profile is a courtesy
        profile = spotify.me(tokens.access_token)
    store.save_session(
        {
            "authorized_at": issued,
            "client_id": spotify.client_id,
            "display_name": profile.get("display_name"),
            "user_id": profile.get("id"),
            "last_refresh": issued,
            "used_login": state_digest(authorization.state),
        }
    )
    return profile


def save_pending(store: TokenStore, cipher: TokenCipher, authorization: Authorization) -> None:
    """Keep a login in progress (encrypted) so another command can finish it."""
    store.ensure_dir()
    # The URL carries the state in its query, so it is encrypted along with the state.
    secret = {
        "state": authorization.state,
        "code_verifier": authorization.code_verifier,
        "url": authorization.url,
    }
    write_json(
        store.path(PENDING_FILE),
        {
            "redirect_uri": authorization.redirect_uri,
            "created_at": authorization.created_at,
            "secret": cipher.encrypt_json(secret),
        },
    )


def load_pending(store: TokenStore, cipher: TokenCipher, *, now: float) -> Authorization | None:
    """The login in progress, or None when there is none or it is too old to finish.

    An unusable file (not ours, or not for these keys) is renamed aside with a warning.
    """
    path = store.path(PENDING_FILE)
    try:
        record = read_json(path)
        if record is None:
            return None
        secret = cipher.decrypt_json(str(record["secret"]))
        authorization = Authorization(
            url=_text(secret["url"]),
            redirect_uri=_text(record["redirect_uri"]),
            created_at=float(record["created_at"]),
            state=_text(secret["state"]),
            code_verifier=secret.get("code_verifier"),
        )
        if not isinstance(authorization.code_verifier, str | None):
            raise TypeError("code_verifier is not text")
        if isinstance(record["created_at"], bool) or not math.isfinite(authorization.created_at):
            raise ValueError("created_at is not a time")
    except (StoreError, CryptoError, KeyError, TypeError, ValueError, OverflowError) as err:
        detail = str(err) if isinstance(err, StoreError | CryptoError) else type(err).__name__
        _LOG.warning("%s is not a usable login in progress (%s); start a new login", path, detail)
        if path.is_file():  # a directory in its place is the operator's to move
            store.keep_aside(PENDING_FILE)
        return None
    if now - authorization.created_at > PENDING_MAX_AGE:
        return None
    return authorization


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__}, not text")
    return value


def clear_pending(store: TokenStore) -> None:
    """Forget the login in progress."""
    with contextlib.suppress(FileNotFoundError):
        store.path(PENDING_FILE).unlink()
