"""The project's exceptions: one root, a small tree, context as attributes.

    TokendError
    ├── ConfigError            the configuration is wrong; exit 78 (EX_CONFIG)
    │   └── ClientRejected     Spotify said invalid_client: the client id or secret is wrong
    ├── AgentRunning           another agent holds the state directory; exit 75 (EX_TEMPFAIL)
    ├── AuthRejected           Spotify refused the grant (invalid_grant): a human must re-authorize
    ├── TransientError         worth retrying: network, 5xx, 429, garbage bodies
    ├── SpotifyError           any other answer from Spotify that a retry will not fix
    │   └── AccessTokenRejected  the Web API answered 401: the access token is bad or expired
    ├── InputError             something a person pasted or sent is not usable
    ├── BrokerError            the MQTT broker could not be reached or refused us
    │   └── BrokerLoginRefused the broker refused our user name or password
    ├── CryptoError            a Fernet key is missing, malformed, or does not decrypt
    └── StoreError             a state file is unreadable or corrupt

No message or attribute ever carries a token, a secret, an authorization code or a key.
"""

from __future__ import annotations

EX_CONFIG = 78
# A second agent on a state directory: temporary, so systemd's Restart= retries it (a stray
# `mqtt-tokend run` during a service restart must not leave the service down for good).
EX_TEMPFAIL = 75


class TokendError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(TokendError):
    """The configuration (file, environment or key file path) is unusable."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class ClientRejected(ConfigError):
    """Spotify rejected the client credentials (`invalid_client`)."""


class AgentRunning(TokendError):
    """Another agent holds the state directory's lock; it may be gone soon: exit 75."""


class AuthRejected(TokendError):
    """Spotify refused the authorization or refresh grant; retrying will not help."""

    def __init__(
        self, message: str, *, error: str = "invalid_grant", description: str = ""
    ) -> None:
        self.error = error
        self.description = description
        super().__init__(message)


class TransientError(TokendError):
    """A failure that a later attempt may not meet; `retry_after` is Spotify's hint in seconds."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class SpotifyError(TokendError):
    """Spotify answered with an error that is neither transient nor an auth rejection."""

    def __init__(self, message: str, *, status: int | None = None, error: str = "") -> None:
        self.status = status
        self.error = error
        super().__init__(message)


class AccessTokenRejected(SpotifyError):
    """The Web API refused the access token (401); a refresh, not a human, fixes it."""


class InputError(TokendError):
    """Something a person pasted or typed cannot be used; the message says what to do."""


class BrokerError(TokendError):
    """The MQTT broker is unreachable, refused the connection, or did not answer in time."""


class BrokerLoginRefused(BrokerError):
    """The broker is up and answered, but refused our user name or password."""

    def __init__(self, problem: str) -> None:
        self.problem = problem  # what happened, without the generic hint
        super().__init__(f"{problem}; check mqtt.username and mqtt.password")


class CryptoError(TokendError):
    """A key file is missing or malformed, or a payload does not decrypt with any key."""


class StoreError(TokendError):
    """A state file cannot be read or written, or holds something other than ours."""
