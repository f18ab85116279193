"""What the daemon needs from the outside, as `Protocol`s: Spotify and the MQTT publisher.

The real `SpotifyClient` and `MqttLink` satisfy them; so do the fakes of the unit tests.
"""

from __future__ import annotations

from typing import Any, Protocol

from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.tokens import LoginSpotify, TokenGrant


class SpotifyPort(LoginSpotify, Protocol):
    """The Spotify calls the agent makes: refresh, verify, devices, app token, player."""

    def refresh(self, refresh_token: str) -> TokenGrant:
        """A new access token (and perhaps a rotated refresh token)."""
        ...

    def client_credentials(self) -> TokenGrant:
        """An app token (no user), for a confidential client."""
        ...

    def devices(self, access_token: str) -> list[dict[str, Any]]:
        """The account's Spotify Connect devices."""
        ...

    def zeroconf_info(self, url: str) -> dict[str, Any]:
        """The local player's zeroconf `getInfo` answer."""
        ...


class Publisher(Protocol):
    """What the agent needs from the MQTT side."""

    @property
    def connected(self) -> bool:
        """True while the broker has accepted us."""
        ...

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        retain: bool,
        expiry: int | None = None,
        reply: Reply | None = None,
    ) -> None:
        """Publish at QoS 1."""
        ...
