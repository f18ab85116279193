"""The shapes of Spotify's tokens: what the token endpoint grants, the user's tokens as the
agent keeps them, and the calls a login needs from a Spotify client."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mqtt_tokend.errors import StoreError


@dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint answered."""

    access_token: str = field(repr=False)
    expires_in: float
    scope: str
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Tokens:
    """The user's Spotify tokens; times are Unix seconds."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    scope: str
    issued_at: float
    authorized_at: float
    token_type: str = "Bearer"

    def seconds_left(self, now: float) -> float:
        """Seconds until the access token expires (negative once it has)."""
        return self.expires_at - now

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokens:
        """Rebuild from the decrypted file; StoreError when a field is missing or wrong."""
        try:
            tokens = cls(
                access_token=_text(data, "access_token"),
                refresh_token=_text(data, "refresh_token"),
                expires_at=_time_field(data, "expires_at"),
                scope=_text(data, "scope", ""),
                issued_at=_time_field(data, "issued_at"),
                authorized_at=_time_field(data, "authorized_at"),
                token_type=_text(data, "token_type", "Bearer"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"token record is incomplete or malformed ({err!r})") from None
        if not tokens.access_token or not tokens.refresh_token:
            raise StoreError("token record has an empty token")
        return tokens


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    """A string field as written; anything else means the record is not ours."""
    value = data[key] if default is None else data.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not a string")
    return value


def unix_seconds(value: Any) -> float | None:
    """A Unix time from JSON, or None when it is not one a float can hold (a bool, a huge
    integer, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _time_field(data: dict[str, Any], key: str) -> float:
    """A time field of the token record; anything but a finite number is corruption."""
    seconds = unix_seconds(data[key])
    if seconds is None:
        raise ValueError(f"{key} is not a finite number")
    return seconds


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
