"""Headless authorization: starting a login, finishing it with Spotify, the login in progress.

A login in progress (state and PKCE verifier) is kept encrypted in the state directory, so
the URL can be printed by one command and the redirect pasted into another.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mqtt_tokend.adapters import logsafe
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import PENDING_FILE, TokenStore, read_json, write_json
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.contract.tokens import LoginSpotify, Tokens
from mqtt_tokend.core.oauth import SAME_LINK, code_from_redirect, pkce_pair, state_digest
from mqtt_tokend.errors import AuthRejected, CryptoError, StoreError, TokendError

__all__ = [  # code_from_redirect is here too, for the CLI that finishes a login
    "PENDING_MAX_AGE",
    "Authorization",
    "begin",
    "clear_pending",
    "code_from_redirect",
    "complete",
    "load_pending",
    "save_pending",
]

_LOG = logging.getLogger(__name__)

PENDING_MAX_AGE = 3600.0


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
