"""Topic names of the MQTT contract (mirrors `topics/`); payloads are in `wire`."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = "online"
OFFLINE = "offline"

REQUEST_VERBS = frozenset({"refresh", "check", "status", "auth"})


@dataclass(frozen=True)
class Topics:
    """Every topic under one base topic."""

    base: str

    @property
    def availability(self) -> str:
        """`online`/`offline`, retained; also the Last Will."""
        return f"{self.base}/availability"

    @property
    def token(self) -> str:
        """The user's access token, Fernet-encrypted, retained."""
        return f"{self.base}/token"

    @property
    def token_app(self) -> str:
        """The client-credentials token, Fernet-encrypted, retained."""
        return f"{self.base}/token/app"

    @property
    def health(self) -> str:
        """The health record, plain JSON, retained."""
        return f"{self.base}/health"

    @property
    def devices(self) -> str:
        """The account's Spotify Connect devices, retained."""
        return f"{self.base}/devices"

    @property
    def login(self) -> str:
        """The URL of the login the agent offers (plain text), retained; empty when none is."""
        return f"{self.base}/login"

    @property
    def alert(self) -> str:
        """Events a person should hear about, not retained."""
        return f"{self.base}/alert"

    @property
    def requests(self) -> str:
        """Subscription filter for every request verb."""
        return f"{self.base}/request/+"

    def request(self, verb: str) -> str:
        """Where a request with this verb is sent."""
        return f"{self.base}/request/{verb}"

    def response(self, verb: str) -> str:
        """Where the answer to a request with this verb is published."""
        return f"{self.base}/response/{verb}"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a request topic, or None when the topic is not a request."""
        prefix = f"{self.base}/request/"
        if not topic.startswith(prefix):
            return None
        return topic[len(prefix) :]
