"""The Web API client's rules, without I/O: retries, waits, and which calls an app token may make.

Pure functions over a frozen `RetryPolicy`, so the decisions are tested without a socket.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

# GET endpoints that need no user scope (Spotify's Web API description lists no scope for them
# and they are not under /me): a client-credentials (app) token may call them. From
# `security` in the published OpenAPI description; tests/unit/test_webapi_policy.py checks
# the list against it.
APP_TOKEN_PATHS = (
    "/albums",
    "/albums/{id}",
    "/albums/{id}/tracks",
    "/artists",
    "/artists/{id}",
    "/artists/{id}/albums",
    "/artists/{id}/related-artists",
    "/artists/{id}/top-tracks",
    "/audio-analysis/{id}",
    "/audio-features",
    "/audio-features/{id}",
    "/audiobooks",
    "/audiobooks/{id}",
    "/audiobooks/{id}/chapters",
    "/browse/categories",
    "/browse/categories/{id}",
    "/browse/categories/{id}/playlists",
    "/browse/featured-playlists",
    "/browse/new-releases",
    "/chapters",
    "/chapters/{id}",
    "/markets",
    "/playlists/{id}",
    "/playlists/{id}/followers/contains",
    "/playlists/{id}/images",
    "/recommendations",
    "/recommendations/available-genre-seeds",
    "/search",
    "/shows",
    "/tracks",
    "/tracks/{id}",
    "/users/{id}",
)
_APP_PATTERNS = tuple(
    re.compile("/v1" + re.sub(r"\{[^}]+\}", "[^/]+", template)) for template in APP_TOKEN_PATHS
)


def app_token_allowed(method: str, path: str) -> bool:
    """True when `method path` (a URL path, "/v1/...") is a catalog call an app token may make."""
    return method.upper() == "GET" and any(p.fullmatch(path) for p in _APP_PATTERNS)


@dataclass(frozen=True)
class RetryPolicy:
    """How patient a client is; the defaults suit a player that a person is waiting on."""

    server_retries: int = 3  # further tries after a 5xx, a timeout or a dropped connection
    backoff_base: float = 0.5  # seconds; doubled per try, full jitter
    backoff_cap: float = 8.0
    rate_limit_retries: int = 2  # further tries after a 429
    retry_after_cap: float = 30.0  # a longer Retry-After is not slept: RateLimited is raised
    token_timeout: float = 10.0  # wait for the agent's token, or for the one after a 401
    request_timeout: float = 10.0  # each HTTP request, connect and read

    def __post_init__(self) -> None:
        for name in ("server_retries", "rate_limit_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        for name in (
            "backoff_base",
            "backoff_cap",
            "retry_after_cap",
            "token_timeout",
            "request_timeout",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number of seconds")

    def backoff(self, retry: int, rng: Callable[[], float]) -> float:
        """Seconds before retry number `retry` (0-based) after a server failure: full jitter."""
        return rng() * min(self.backoff_cap, self.backoff_base * 2.0**retry)


def retry_after(value: str | None, *, now: float | None = None, default: float = 1.0) -> float:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); `default` when it
    is missing or unreadable, never negative."""
    if value is None:
        return default
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError):
            return default
        seconds = when - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return default
    return max(0.0, seconds)
