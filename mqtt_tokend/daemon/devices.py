"""What a health check asks besides "is the token good": devices and the local player."""

from __future__ import annotations

import logging
from typing import Any

from mqtt_tokend.daemon.ports import SpotifyPort
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)


def named_devices(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spotify Connect devices that can be shown (an entry without a name or id cannot)."""
    return [d for d in devices if isinstance(d.get("id"), str) and isinstance(d.get("name"), str)]


class DeviceWatch:
    """The account's Spotify Connect devices and the local player's zeroconf state."""

    def __init__(self, *, spotify: SpotifyPort, zeroconf_url: str) -> None:
        self._spotify = spotify
        self._zeroconf_url = zeroconf_url
        self.player: dict[str, Any] | None = None  # for the health record

    def fetch(self, access_token: str) -> list[dict[str, Any]] | None:
        """The devices that can be shown; None (quietly) when Spotify does not say."""
        try:
            devices = self._spotify.devices(access_token)
        except TokendError as err:
            _LOG.info("devices not available: %s", err)
            return None
        return named_devices(devices)

    def check_player(self) -> None:
        """Does the local player still have an active user (playback survives without us)?"""
        if not self._zeroconf_url:
            return
        try:
            info = self._spotify.zeroconf_info(self._zeroconf_url)
        except TokendError as err:
            self.player = {"reachable": False, "active_user": None, "error": str(err)}
            return
        name = info.get("remoteName")  # the player's word: a string, or nothing
        self.player = {
            "reachable": True,
            "active_user": bool(info.get("activeUser")),
            "name": name if isinstance(name, str) else None,
        }
