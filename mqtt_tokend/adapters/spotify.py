"""The Spotify client: token grants on the Accounts service and the two Web API calls we use.

Every call has one overall deadline, `timeout` seconds from its start: the timeout `requests`
takes applies to each read, so a front end trickling a byte a second would hold a call for
minutes. A timer shuts the call's socket down when the deadline passes (`adapters.deadline`).

Every failure is classified once, in `_classify`, where the response is read:
`invalid_grant` needs a human (AuthRejected), `invalid_client` is configuration
(ClientRejected), 429/5xx/network errors/unparseable bodies are transient (TransientError),
and a 401 from the Web API means the access token must be refreshed (AccessTokenRejected).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from mqtt_tokend.adapters.deadline import WATCHED_POOLS, call_deadline
from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.core.timing import RETRY_AFTER_CAP
from mqtt_tokend.errors import (
    AccessTokenRejected,
    AuthRejected,
    ClientRejected,
    SpotifyError,
    TransientError,
)

_LOG = logging.getLogger(__name__)

_SECRET_FIELDS = ("refresh_token", "code", "code_verifier")  # form fields an echo must not show


MAX_RETRY_AFTER = RETRY_AFTER_CAP  # Spotify has asked for hours; why an hour: contract/health


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def _json_body(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested past the stack
        return None
    return body if isinstance(body, dict) else None


def _classify(
    response: requests.Response,
    *,
    what: str,
    now: float,
    web_api: bool,
    hide: Iterable[str] = (),
) -> dict[str, Any]:
    """Return the JSON body of a success, or raise the one exception that says what to do.

    `hide`: the secrets the request carried; an error body that echoes one never passes it on.
    """
    status = response.status_code
    body = _json_body(response)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise TransientError(
            f"{what}: rate limited by Spotify (429, Retry-After {retry_after})",
            status=status,
            retry_after=retry_after,
        )
    if status >= 500:
        raise TransientError(f"{what}: Spotify answered {status}", status=status)
    if 200 <= status < 300:
        if body is None:
            raise TransientError(f"{what}: Spotify answered {status} with an unparseable body")
        return body
    error, description = _error_fields(body, hide)
    if error == "invalid_client":
        raise ClientRejected(
            f"Spotify rejected the client ({description or error}): check spotify.client_id "
            "and spotify.client_secret in the configuration"
        )
    if error == "invalid_grant":
        raise AuthRejected(
            f"{what}: Spotify refused the grant ({description or error})",
            error=error,
            description=description,
        )
    if status == 401 and web_api:
        raise AccessTokenRejected(f"{what}: access token refused (401)", status=status)
    if body is None and status in (400, 401, 403, 404):
        # Captive portals and proxies answer with HTML; Spotify itself answers JSON.
        raise TransientError(f"{what}: {status} with a body that is not Spotify's", status=status)
    raise SpotifyError(
        f"{what}: Spotify answered {status} ({description or error or 'no detail'})",
        status=status,
        error=error,
    )


def _error_fields(body: dict[str, Any] | None, hide: Iterable[str] = ()) -> tuple[str, str]:
    """(error, description) from the Accounts form or the Web API form of an error body."""
    if body is None:
        return "", ""
    error = body.get("error")
    if isinstance(error, dict):  # Web API: {"error": {"status": 401, "message": "..."}}
        return "", _scrub(str(error.get("message", "")), hide)[:200]
    description = _scrub(str(body.get("error_description", "")), hide)
    return _scrub(str(error or ""), hide)[:100], description[:200]


def _scrub(text: str, hide: Iterable[str]) -> str:
    """`text` without any of the secrets in `hide` (scrubbed before it is cut short)."""
    for secret in hide:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _grant(body: dict[str, Any], *, what: str) -> TokenGrant:
    try:
        access_token = body["access_token"]
        expires_in = float(body["expires_in"])
    except (KeyError, TypeError, ValueError):
        raise TransientError(f"{what}: the answer lacks access_token or expires_in") from None
    refresh_token = body.get("refresh_token")
    if not isinstance(access_token, str) or not access_token or not math.isfinite(expires_in):
        raise TransientError(f"{what}: the answer holds a malformed token")
    if expires_in <= 0:
        raise TransientError(f"{what}: the answer holds a token that is already expired")
    return TokenGrant(
        access_token=access_token,
        expires_in=expires_in,
        scope=str(body.get("scope", "")),
        token_type=str(body.get("token_type", "Bearer")),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
    )


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections a call's deadline can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, building pools of watched connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(WATCHED_POOLS)


def deadline_session() -> requests.Session:
    """A session whose calls `SpotifyClient` can hold to an overall deadline."""
    session = requests.Session()
    session.mount("http://", DeadlineAdapter())
    session.mount("https://", DeadlineAdapter())
    return session


class SpotifyClient:
    """One keep-alive HTTP session to Spotify's Accounts service and Web API."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str = "",
        accounts_url: str,
        api_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.accounts_url = accounts_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._session = session or deadline_session()
        self._clock = clock

    def __repr__(self) -> str:
        return f"SpotifyClient(client_id={self.client_id!r}, accounts_url={self.accounts_url!r})"

    @property
    def confidential(self) -> bool:
        """True when a client secret is configured."""
        return bool(self._client_secret)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def authorize_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        scopes: Iterable[str],
        code_challenge: str | None = None,
    ) -> str:
        """The URL a person opens to approve access (PKCE when a challenge is given)."""
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(scopes),
        }
        if code_challenge:
            params |= {"code_challenge_method": "S256", "code_challenge": code_challenge}
        return f"{self.accounts_url}/authorize?{urlencode(params)}"

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenGrant:
        """Trade an authorization code for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        grant = _grant(self._token_call(form, what="authorization code"), what="authorization")
        if grant.refresh_token is None:
            raise SpotifyError("Spotify granted no refresh token; the login cannot be kept alive")
        return grant

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Refresh the user's access token; a PKCE session gets a new refresh token too."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return _grant(self._token_call(form, what="refresh"), what="refresh")

    def client_credentials(self) -> TokenGrant:
        """An app token (no user), for a confidential client."""
        if not self.confidential:
            raise ClientRejected("an app token needs spotify.client_secret")
        form = {"grant_type": "client_credentials"}
        return _grant(self._token_call(form, what="client credentials"), what="app token")

    def me(self, access_token: str) -> dict[str, Any]:
        """The current user's profile; AccessTokenRejected on 401."""
        return self._api_get("/v1/me", access_token)

    def devices(self, access_token: str) -> list[dict[str, Any]]:
        """The account's Spotify Connect devices."""
        body = self._api_get("/v1/me/player/devices", access_token)
        devices = body.get("devices")
        if not isinstance(devices, list):
            raise TransientError("GET /v1/me/player/devices: the answer lacks a device list")
        return [device for device in devices if isinstance(device, dict)]

    def zeroconf_info(self, url: str) -> dict[str, Any]:
        """The local Spotify Connect player's `?action=getInfo` (librespot, spotifyd)."""
        separator = "&" if "?" in url else "?"
        return self._send("GET", f"{url}{separator}action=getInfo", what="zeroconf getInfo")

    def _token_call(self, form: dict[str, str], *, what: str) -> dict[str, Any]:
        hide = [form.get(k, "") for k in _SECRET_FIELDS]
        auth: tuple[str, str] | None = None
        if self._client_secret:
            auth = (self.client_id, self._client_secret)
        else:
            form = form | {"client_id": self.client_id}
        url = f"{self.accounts_url}/api/token"
        return self._send("POST", url, what=what, hide=hide, data=form, auth=auth)

    def _api_get(self, path: str, access_token: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        url = f"{self.api_url}{path}"
        what = f"GET {path}"
        return self._send("GET", url, what=what, web_api=True, hide=[access_token], headers=headers)

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        web_api: bool = False,
        hide: Iterable[str] = (),
        **kwargs: Any,
    ) -> dict[str, Any]:
        with call_deadline(self._timeout) as deadline:
            try:
                return self._exchange(method, url, what=what, web_api=web_api, hide=hide, **kwargs)
            except TransientError as err:
                if deadline.expired:
                    raise TransientError(
                        f"{what}: no complete answer from Spotify within {self._timeout:g} s",
                        status=err.status,
                    ) from err
                raise

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        what: str,
        web_api: bool,
        hide: Iterable[str],
        **kwargs: Any,
    ) -> dict[str, Any]:
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except (requests.RequestException, ValueError) as err:
            # ValueError: requests follows a redirect to a malformed Location without wrapping it
            raise TransientError(f"{what}: {type(err).__name__} talking to Spotify") from err
        with response:
            try:
                _ = response.content
            except requests.RequestException as err:
                raise TransientError(f"{what}: {type(err).__name__} reading the answer") from err
            _LOG.debug("%s -> %s", what, response.status_code)
            now, hide = self._clock(), [self._client_secret, *hide]
            return _classify(response, what=what, now=now, web_api=web_api, hide=hide)
