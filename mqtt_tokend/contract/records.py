"""The shapes of the plain state records (the session record and the status file).

Unknown keys are let through (a newer version may add some); a known key of the wrong type
means the file is not ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mqtt_tokend.contract.health import State


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_time_or_none(value: object) -> bool:
    return value is None or _is_time(value)


def _is_text_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_times(value: object) -> bool:
    return isinstance(value, list) and all(_is_time(item) for item in value)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# The known keys of each plain record and what each must hold.
SESSION_FIELDS: dict[str, Callable[[object], bool]] = {
    "authorized_at": _is_time_or_none,
    "last_refresh": _is_time_or_none,
    "client_id": _is_text_or_none,
    "display_name": _is_text_or_none,
    "user_id": _is_text_or_none,
    "reauth_warned": _is_times,
    "retry_after_until": _is_time_or_none,
    "used_login": _is_text_or_none,
}
STATUS_FIELDS: dict[str, Callable[[object], bool]] = {
    "state": lambda value: value in {state.value for state in State},
    "message": lambda value: isinstance(value, str),
    "checked_at": _is_time,
    "expires_at": _is_time_or_none,
    "last_refresh": _is_time_or_none,
    "next_refresh": _is_time_or_none,
    "reauth_by": _is_time_or_none,
    "retry_after_until": _is_time_or_none,
    "consecutive_failures": _is_count,
    "instructions": _is_text_or_none,
    "user": _is_text_or_none,
}
STATUS_REQUIRED = ("state", "message", "checked_at")


def shape_problems(
    record: dict[str, Any], fields: dict[str, Callable[[object], bool]], required: tuple[str, ...]
) -> list[str]:
    """What is wrong with a record's known keys ("reauth_warned is int"), empty when fine."""
    problems = [f"{key} is missing" for key in required if key not in record]
    problems += [
        f"{key} is {type(record[key]).__name__}"
        for key, valid in fields.items()
        if key in record and not valid(record[key])
    ]
    return problems
