"""The emulated Web API: the user, the player and its devices, and a small catalog.

No HTTP here: the handler routes a request to an endpoint name, checks the bearer token with
`Accounts.bearer`, and renders the `Answer` this module gives. Shapes follow Spotify's
published Web API description (a subset of the fields).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from mqtt_tokend.dev.emulator.accounts import Answer, api_error

DEMO_USER: dict[str, Any] = {
    "id": "lofi-demo-user",
    "display_name": "LoFi Demo",
    "email": "lofi-demo@example.com",
    "product": "premium",
    "country": "DE",
    "type": "user",
    "uri": "spotify:user:lofi-demo-user",
    "href": "https://api.spotify.com/v1/users/lofi-demo-user",
    "followers": {"href": None, "total": 0},
    "images": [],
}
DEMO_DEVICES: list[dict[str, Any]] = [
    {
        "id": "7c3f0a5e1b2d4c6e8f9a0b1c2d3e4f5a6b7c8d9e",
        "is_active": True,
        "is_private_session": False,
        "is_restricted": False,
        "name": "LoFi Pi",
        "type": "Speaker",
        "volume_percent": 60,
        "supports_volume": True,
    },
    {
        "id": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "is_active": False,
        "is_private_session": False,
        "is_restricted": False,
        "name": "Kitchen",
        "type": "Computer",
        "volume_percent": 35,
        "supports_volume": True,
    },
]


def _object(kind: str, object_id: str, name: str) -> dict[str, Any]:
    return {
        "id": object_id,
        "name": name,
        "type": kind,
        "uri": f"spotify:{kind}:{object_id}",
        "href": f"https://api.spotify.com/v1/{kind}s/{object_id}",
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{object_id}"},
    }


def _track(track_id: str, name: str, artist: str, duration_ms: int) -> dict[str, Any]:
    artists = [_object("artist", f"{track_id[:12]}Ar", artist)]
    album = _object("album", f"{track_id[:12]}Al", f"{name} (single)") | {
        "album_type": "single",
        "total_tracks": 1,
        "available_markets": ["DE"],
        "images": [],
        "release_date": "2026-01-01",
        "release_date_precision": "day",
        "artists": artists,
    }
    return _object("track", track_id, name) | {
        "duration_ms": duration_ms,
        "artists": artists,
        "album": album,
        "explicit": False,
        "is_local": False,
        "track_number": 1,
        "disc_number": 1,
    }


DEMO_TRACKS: tuple[dict[str, Any], ...] = (
    _track("4uLU6hMCjMI75M1A2tKUQC", "Rainy Window", "LoFi Demo Band", 184_000),
    _track("7ouMYWpwJ422jRcDASZB7P", "Late Tram", "LoFi Demo Band", 201_000),
    _track("0VjIjW4GlUZAMYd2vXMi3b", "Tea at Four", "Quiet Keys", 167_000),
)

# (method, path pattern) -> endpoint name. Endpoints in APP_ENDPOINTS take an app token too.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"/v1/me"), "me"),
    ("GET", re.compile(r"/v1/me/player/devices"), "devices"),
    ("GET", re.compile(r"/v1/me/player"), "player"),
    ("PUT", re.compile(r"/v1/me/player/play"), "play"),
    ("PUT", re.compile(r"/v1/me/player/pause"), "pause"),
    ("POST", re.compile(r"/v1/me/player/queue"), "queue"),
    ("GET", re.compile(r"/v1/search"), "search"),
    ("GET", re.compile(r"/v1/tracks/[0-9A-Za-z]{1,64}"), "tracks"),
)
API_ENDPOINTS = tuple(name for _, _, name in ROUTES)
APP_ENDPOINTS = frozenset(("search", "tracks"))


def route(method: str, path: str) -> str | None:
    """The Web API endpoint a request is for, or None."""
    for route_method, pattern, name in ROUTES:
        if method == route_method and pattern.fullmatch(path):
            return name
    return None


def known_path(path: str) -> bool:
    """True for a Web API path under any method (a wrong method is a 405, not a 404)."""
    return any(pattern.fullmatch(path) for _, pattern, _ in ROUTES)


def plausible(endpoint: str) -> dict[str, Any]:
    """What a full answer of `endpoint` looks like (for faults that cut one short)."""
    if endpoint == "devices":
        return {"devices": DEMO_DEVICES}
    if endpoint in ("search", "tracks", "player"):
        return {"item": DEMO_TRACKS[0]}
    return DEMO_USER


@dataclass(frozen=True)
class Request:
    """What the Web API side needs of one request."""

    endpoint: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, or None


class WebApi:
    """The user's player (one account, shared by every token) and the catalog."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._device = DEMO_DEVICES[0]["id"]
        self._playing = False
        self._track = DEMO_TRACKS[0]

    def answer(self, request: Request, *, user: bool) -> Answer:
        """The answer to a request whose bearer token was accepted (`user`: a user's token)."""
        if not user and request.endpoint not in APP_ENDPOINTS:
            return api_error(403, "This endpoint needs a user's access token, not an app token")
        handler = getattr(self, f"_{request.endpoint}")
        answer: Answer = handler(request)
        return answer

    def _me(self, _request: Request) -> Answer:
        return Answer(200, dict(DEMO_USER))

    def _devices(self, _request: Request) -> Answer:
        with self._lock:
            device = self._device
        devices = [dict(d, is_active=d["id"] == device) for d in DEMO_DEVICES]
        return Answer(200, {"devices": devices})

    def _player(self, _request: Request) -> Answer:
        with self._lock:
            device = next(d for d in DEMO_DEVICES if d["id"] == self._device)
            state = {
                "device": dict(device, is_active=True),
                "is_playing": self._playing,
                "item": self._track,
                "currently_playing_type": "track",
                "progress_ms": 0,
                "shuffle_state": False,
                "repeat_state": "off",
            }
        return Answer(200, state)

    def _play(self, request: Request) -> Answer:
        device = request.query.get("device_id")
        if device is not None and device not in {d["id"] for d in DEMO_DEVICES}:
            return api_error(404, "Device not found")
        uris = request.body.get("uris") if isinstance(request.body, dict) else None
        track = None
        if isinstance(uris, list) and uris:
            track = next((t for t in DEMO_TRACKS if t["uri"] == uris[0]), None)
            if track is None:
                return api_error(400, "Invalid track uri")
        with self._lock:
            self._device = device or self._device
            self._track = track or self._track
            self._playing = True
        return Answer(204, {})

    def _pause(self, _request: Request) -> Answer:
        with self._lock:
            self._playing = False
        return Answer(204, {})

    def _queue(self, request: Request) -> Answer:
        uri = request.query.get("uri")
        if not any(t["uri"] == uri for t in DEMO_TRACKS):
            return api_error(400, "Invalid track uri")
        return Answer(204, {})

    def _search(self, request: Request) -> Answer:
        words = request.query.get("q", "").lower().split()
        if not words or "track" not in request.query.get("type", "").split(","):
            return api_error(400, "Bad search: q and type=track are required")
        found = [
            t
            for t in DEMO_TRACKS
            if all(w in f"{t['name']} {t['artists'][0]['name']}".lower() for w in words)
        ]
        tracks = {
            "href": "https://api.spotify.com/v1/search",
            "items": found,
            "limit": 20,
            "next": None,
            "offset": 0,
            "previous": None,
            "total": len(found),
        }
        return Answer(200, {"tracks": tracks})

    def _tracks(self, request: Request) -> Answer:
        track_id = request.path.rsplit("/", 1)[-1]
        track = next((t for t in DEMO_TRACKS if t["id"] == track_id), None)
        return Answer(200, track) if track else api_error(404, "Non existing id")
