"""How the product words things for people: durations, one-line reasons, who is logged in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def span(seconds: float) -> str:
    """A duration in the largest unit that still reads as a whole number: `90 s`, `3 h`."""
    seconds = int(seconds)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def one_line(text: str) -> str:
    """The text with every run of white space (newlines too) folded into one space."""
    return " ".join(text.split())


def user_name(profile: Mapping[str, Any]) -> str | None:
    """What to call a Spotify user: the display name, else the user id, else None."""
    for key in ("display_name", "id"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            return value
    return None
