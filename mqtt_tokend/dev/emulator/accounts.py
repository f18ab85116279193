"""The emulated Accounts service and Web API: clients, codes, tokens and their rules.

No HTTP here: the server hands in parsed requests and renders the `Answer`s. Every method
takes the lock, so the model is safe to share between handler threads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

CODE_LIFETIME = 600.0
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_LOOPBACK_HOSTS = ("127.0.0.1", "::1")

# Spotify ends a login (every refresh token descending from one authorization) after about
# six months; the agent's `refresh_token_max_age_days` defaults to the same 180 days.
SIX_MONTHS = 180 * 86400.0


class AuthorizeError(ValueError):
    """/authorize refused to redirect (Spotify shows an error page: HTTP 400)."""


@dataclass(frozen=True)
class Answer:
    """An HTTP status and the JSON body to send with it."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class _Caller:
    client_id: str | None
    authenticated: bool  # the client secret was presented and is right


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    issued_at: float


@dataclass(frozen=True)
class _Session:
    """One user authorization; every refresh token descends from it."""

    client_id: str
    scope: str
    pkce: bool
    authorized_at: float


@dataclass
class _Refresh:
    session: _Session
    revoked: bool = False


@dataclass
class _Access:
    client_id: str
    scope: str
    expires_at: float
    user: bool
    session: _Session | None = None  # the login a user token descends from
    revoked: bool = False
    expired: bool = False


@dataclass(frozen=True)
class Bearer:
    """An accepted bearer token: whether it is a user's (else an app token)."""

    user: bool


@dataclass
class _Tables:
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)


def oauth_error(error: str, description: str, status: int = 400) -> Answer:
    """The Accounts service's error shape."""
    return Answer(status, {"error": error, "error_description": description})


def api_error(status: int, message: str) -> Answer:
    """The Web API's error shape."""
    return Answer(status, {"error": {"status": status, "message": message}})


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _check_redirect_uri(redirect_uri: str) -> None:
    try:
        parts = urlsplit(redirect_uri)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise AuthorizeError("INVALID_CLIENT: Invalid redirect URI") from None
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("http", "https") or host == "localhost":
        raise AuthorizeError("INVALID_CLIENT: Invalid redirect URI")
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise AuthorizeError("INVALID_CLIENT: Insecure redirect URI")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Accounts:
    """Spotify's authorization rules, over an injected clock."""

    def __init__(
        self,
        *,
        clients: Mapping[str, str | None],
        token_lifetime: float,
        refresh_token_max_age: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._clients = dict(clients)
        self._clock = clock
        self._lock = threading.Lock()
        self._tables = _Tables()
        self._token_lifetime = 0.0
        self._max_age: float | None = None
        self.token_lifetime = token_lifetime
        self.refresh_token_max_age = refresh_token_max_age
        # Spotify rotated PKCE refresh tokens (single use) until 2026-06-18; since then it
        # returns none and the first one lives six months. False models today's behaviour.
        self.rotate_refresh_tokens = True
        # Whether a refresh ends the access tokens issued before it (401 "Invalid access token"),
        # so a client meets a real 401 after another process refreshed.
        self.revoke_on_refresh = False
        self._issued: list[str] = []  # every code and token, for tests that hunt for leaks

    @property
    def token_lifetime(self) -> float:
        """Seconds an access token issued from now on stays valid."""
        return self._token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, value: float) -> None:
        if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError("token_lifetime must be a positive number of seconds")
        self._token_lifetime = float(value)

    @property
    def refresh_token_max_age(self) -> float | None:
        """Seconds after the user's authorization when its refresh tokens die (None: never)."""
        return self._max_age

    @refresh_token_max_age.setter
    def refresh_token_max_age(self, value: float | None) -> None:
        if value is not None and (
            isinstance(value, bool) or not math.isfinite(value) or value <= 0
        ):
            raise ValueError("refresh_token_max_age must be a positive number of seconds or None")
        self._max_age = None if value is None else float(value)

    def authorize(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        state: str | None,
        scope: str,
        response_type: str,
        code_challenge: str | None,
        code_challenge_method: str | None,
    ) -> str:
        """The redirect URL /authorize answers with; AuthorizeError for an error page."""
        if client_id not in self._clients:
            raise AuthorizeError("INVALID_CLIENT: Invalid client")
        _check_redirect_uri(redirect_uri)
        echo = {} if state is None else {"state": state}
        if response_type != "code":
            return _with_query(redirect_uri, {"error": "unsupported_response_type"} | echo)
        public = self._clients[client_id] is None
        if code_challenge is not None and code_challenge_method != "S256":
            return _with_query(redirect_uri, {"error": "invalid_request"} | echo)
        if public and not code_challenge:
            return _with_query(redirect_uri, {"error": "invalid_request"} | echo)
        code = secrets.token_urlsafe(48)
        with self._lock:
            self._issued.append(code)
            self._tables.codes[code] = _Code(
                client_id, redirect_uri, scope, code_challenge or None, self._clock()
            )
        return _with_query(redirect_uri, {"code": code} | echo)

    def token(self, form: Mapping[str, str], authorization: str | None) -> Answer:
        """POST /api/token, given the decoded form and the Authorization header."""
        grant_type = form.get("grant_type")
        if not grant_type:
            return oauth_error("unsupported_grant_type", "grant_type parameter is missing")
        if grant_type not in GRANT_TYPES:
            return oauth_error("unsupported_grant_type", "unsupported grant type")
        caller = self._authenticate(form, authorization)
        if isinstance(caller, Answer):
            return caller
        with self._lock:
            if grant_type == "authorization_code":
                return self._exchange_code(form, caller)
            if grant_type == "refresh_token":
                return self._refresh(form, caller)
            if not caller.authenticated or caller.client_id is None:
                return oauth_error("invalid_client", "Invalid client")
            return self._issue(caller.client_id, "", session=None, new_refresh=False)

    def bearer(self, authorization: str | None) -> Bearer | Answer:
        """The Web API's check of an Authorization header: the token, or the 401 to send."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            record = self._tables.access.get(token.strip()) if scheme.lower() == "bearer" else None
            if record is None or record.revoked:
                return api_error(401, "Invalid access token")
            if record.expired or self._clock() >= record.expires_at:
                return api_error(401, "The access token expired")
            return Bearer(user=record.user)

    def issued_secrets(self) -> list[str]:
        """Every authorization code, access token and refresh token handed out so far."""
        with self._lock:
            return list(self._issued)

    def live_refresh_tokens(self) -> set[str]:
        """Refresh tokens Spotify would still accept (for tests that check nothing was lost)."""
        with self._lock:
            return {token for token, record in self._tables.refresh.items() if not record.revoked}

    def revoke_all(self) -> None:
        """Revoke every refresh and access token issued so far."""
        with self._lock:
            for refresh in self._tables.refresh.values():
                refresh.revoked = True
            for access in self._tables.access.values():
                access.revoked = True

    def age_logins(self, seconds: float) -> None:
        """Move every login's authorization `seconds` into the past (`refresh_token_max_age`
        then ends those older than it, as Spotify ends a login after six months)."""
        if isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
            raise ValueError("seconds must be a non-negative number")
        with self._lock:
            aged: dict[int, _Session] = {}

            def older(old: _Session) -> _Session:
                return aged.setdefault(
                    id(old), replace(old, authorized_at=old.authorized_at - seconds)
                )

            for refresh in self._tables.refresh.values():
                refresh.session = older(refresh.session)
            for access in self._tables.access.values():
                if access.session is not None:
                    access.session = older(access.session)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far count as expired."""
        with self._lock:
            for access in self._tables.access.values():
                access.expired = True

    def _authenticate(self, form: Mapping[str, str], authorization: str | None) -> _Caller | Answer:
        """Who is calling: Basic auth, else client_id + client_secret, else a bare client_id."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except ValueError:
                return oauth_error("invalid_client", "Invalid client")
            client_id, colon, secret = decoded.partition(":")
            if not colon or form.get("client_id", client_id) != client_id:
                return oauth_error("invalid_client", "Invalid client")
        elif "client_secret" in form:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        else:
            client_id = form.get("client_id", "")
            if not client_id:
                return _Caller(None, authenticated=False)
            if client_id not in self._clients:
                return oauth_error("invalid_client", "Invalid client")
            return _Caller(client_id, authenticated=False)
        if client_id not in self._clients:
            return oauth_error("invalid_client", "Invalid client")
        expected = self._clients[client_id]
        if expected is None or not _same(secret, expected):
            return oauth_error("invalid_client", "Invalid client secret")
        return _Caller(client_id, authenticated=True)

    def _exchange_code(self, form: Mapping[str, str], caller: _Caller) -> Answer:
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        if not code:
            return oauth_error("invalid_request", "code must be supplied")
        if not redirect_uri:
            return oauth_error("invalid_request", "redirect_uri must be supplied")
        if caller.client_id is None:
            return oauth_error("invalid_client", "Invalid client")
        now = self._clock()
        record = self._tables.codes.get(code)
        if record is not None and now - record.issued_at >= CODE_LIFETIME:
            del self._tables.codes[code]
            record = None
        if record is None or record.client_id != caller.client_id:
            return oauth_error("invalid_grant", "Invalid authorization code")
        if record.redirect_uri != redirect_uri:
            return oauth_error("invalid_grant", "Invalid redirect URI")
        verifier = form.get("code_verifier")
        if verifier:
            if record.challenge is None or not _same(_s256(verifier), record.challenge):
                return oauth_error("invalid_grant", "code_verifier was incorrect")
        elif record.challenge is not None:
            return oauth_error("invalid_request", "code_verifier must be supplied")
        elif not caller.authenticated:
            return oauth_error("invalid_client", "Invalid client")
        del self._tables.codes[code]
        session = _Session(record.client_id, record.scope, not caller.authenticated, now)
        return self._issue(record.client_id, record.scope, session=session, new_refresh=True)

    def _refresh(self, form: Mapping[str, str], caller: _Caller) -> Answer:
        token = form.get("refresh_token")
        if not token:
            return oauth_error("invalid_request", "refresh_token must be supplied")
        if caller.client_id is None:
            return oauth_error("invalid_client", "Invalid client")
        record = self._tables.refresh.get(token)
        if record is None or record.session.client_id != caller.client_id:
            return oauth_error("invalid_grant", "Invalid refresh token")
        session = record.session
        if not session.pkce and not caller.authenticated:
            return oauth_error("invalid_client", "Invalid client")
        too_old = self._max_age is not None and (
            self._clock() - session.authorized_at >= self._max_age
        )
        if record.revoked or too_old:
            return oauth_error("invalid_grant", "Refresh token revoked")
        rotate = session.pkce and self.rotate_refresh_tokens
        if rotate:
            record.revoked = True  # single-use: the new one replaces it at once
        if self.revoke_on_refresh:
            for access in self._tables.access.values():
                access.revoked = access.revoked or access.session is session
        return self._issue(session.client_id, session.scope, session=session, new_refresh=rotate)

    def _issue(
        self, client_id: str, scope: str, *, session: _Session | None, new_refresh: bool
    ) -> Answer:
        """A new access token (a user's when `session` is given), and a refresh token too."""
        access_token = secrets.token_urlsafe(48)
        self._issued.append(access_token)
        expires_at = self._clock() + self._token_lifetime
        user = session is not None
        self._tables.access[access_token] = _Access(client_id, scope, expires_at, user, session)
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": _number(self._token_lifetime),
        }
        if session is not None and new_refresh:
            refresh_token = secrets.token_urlsafe(96)
            self._issued.append(refresh_token)
            self._tables.refresh[refresh_token] = _Refresh(session)
            body["refresh_token"] = refresh_token
        return Answer(200, body)
