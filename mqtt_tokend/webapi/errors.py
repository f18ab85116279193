"""What can go wrong with a Web API call, each saying what a person must do.

    TokendError
    └── WebApiError              a Web API call failed; `status` (None: no answer), `path`
        ├── LoginNeeded          the user's login needs a person (health auth_required)
        ├── TokenUnavailable     the agent published no usable token (down, broker, key)
        ├── TokenRejected        Spotify refused even the token the agent refreshed for us
        ├── RateLimited          429 and Spotify asks for a longer wait than we will sleep
        ├── SpotifyUnavailable   5xx, timeouts or no connection, after bounded retries
        └── RequestRefused       any other 4xx: the request itself (scope, Premium, id) is wrong

No message or attribute carries a token.
"""

from __future__ import annotations

from mqtt_tokend.errors import TokendError

# What a person does when Spotify ended the login, wherever the health record has no words.
LOGIN_FIX = (
    "on the Pi run `sudo mqtt-tokend auth` (or press the Spotify login button in Home "
    "Assistant); the agent picks the new login up by itself"
)


class WebApiError(TokendError):
    """A Web API call failed; `status` is Spotify's HTTP status (None: no answer)."""

    def __init__(self, message: str, *, path: str, status: int | None = None) -> None:
        self.path = path
        self.status = status
        super().__init__(message)


class LoginNeeded(WebApiError):
    """The user's login needs a person; `instructions` is the agent's own fix."""

    def __init__(self, *, path: str, instructions: str | None, state: str) -> None:
        self.instructions = instructions or f"Spotify needs you to log in again: {LOGIN_FIX}."
        self.state = state
        super().__init__(
            f"{path} needs the user's Spotify login, which needs a person (agent state "
            f"{state}). {self.instructions}",
            path=path,
        )


class TokenUnavailable(WebApiError):
    """No usable token came from the agent within the wait."""


class TokenRejected(WebApiError):
    """Spotify answered 401 to the token the agent refreshed after our report."""


class RateLimited(WebApiError):
    """Spotify asked for a wait (`retry_after` s) longer than the client will sleep."""

    def __init__(self, *, path: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"Spotify rate-limits {path} for {retry_after:.0f} s more; try again after that "
            "(every process on this account shares the limit)",
            path=path,
            status=429,
        )


class SpotifyUnavailable(WebApiError):
    """Spotify's Web API failed (5xx, timeouts) after every retry."""


class RequestRefused(WebApiError):
    """Spotify refused the request itself (400, 403, 404...): retrying will not help."""

    def __init__(self, *, path: str, status: int, message: str) -> None:
        self.spotify_message = message
        hint = _HINTS.get(status, "check the request against Spotify's Web API reference")
        super().__init__(
            f"Spotify refused {path} (HTTP {status}: {message}); {hint}", path=path, status=status
        )


_HINTS = {
    403: "the login may lack a scope this call needs (log in again with it: "
    "`sudo mqtt-tokend auth`), the account may need Premium, or an app token cannot do this",
    404: "the id, or the device, does not exist (is the player online?)",
}
