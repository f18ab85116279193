"""Spotify's Web API for consumers of the agent's token: `SpotifyClient`, and
`TokendAuthManager` for spotipy. Loads `requests` (unlike `mqtt_tokend.consumer`)."""

from mqtt_tokend.webapi.client import SpotifyClient
from mqtt_tokend.webapi.errors import (
    LoginNeeded,
    RateLimited,
    RequestRefused,
    SpotifyUnavailable,
    TokenRejected,
    TokenUnavailable,
    WebApiError,
)
from mqtt_tokend.webapi.policy import RetryPolicy
from mqtt_tokend.webapi.spotipy_auth import TokendAuthManager

__all__ = [
    "LoginNeeded",
    "RateLimited",
    "RequestRefused",
    "RetryPolicy",
    "SpotifyClient",
    "SpotifyUnavailable",
    "TokenRejected",
    "TokenUnavailable",
    "TokendAuthManager",
    "WebApiError",
]
