"""The emulator's control endpoints under /_emulator/: faults, revoking, ageing, settings, counts.

Each takes the server and the request body and returns the status and JSON to send, so the
HTTP handler stays a router. `CONTROL_HELP` is what `mqtt-tokend emulator --help` prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mqtt_tokend.dev.emulator.faults import FAULT_ENDPOINTS, FAULT_KINDS, Fault
from mqtt_tokend.dev.emulator.httpd import EmulatorServer

Reply = tuple[int, dict[str, Any]]

_FAULT_FIELDS = frozenset(("kind", "endpoint", "count", "status", "retry_after", "delay"))
_CONFIG_FIELDS = frozenset(("token_lifetime", "refresh_token_max_age", "revoke_on_refresh"))
_AGE_FIELDS = frozenset(("days", "seconds"))
DAY = 86400.0

# Printed by `mqtt-tokend emulator --help`; $URL is the emulator's address.
# tests/unit/test_emulator_tool.py runs every curl line against a running emulator.
CONTROL_HELP = f"""\
control endpoints (JSON over HTTP; first set URL to the address the emulator prints):
  # revoke every login and token (the agent's next refresh gets invalid_grant)
  curl -s -X POST "$URL/_emulator/revoke"
  # age every login; past --refresh-token-max-age (six months) its refresh is refused, as
  # Spotify ends a login twice a year
  curl -s -X POST "$URL/_emulator/age" -d '{{"days": 181}}'
  # every access token issued so far answers 401
  curl -s -X POST "$URL/_emulator/expire"
  # queue a fault: kind {", ".join(FAULT_KINDS)};
  # endpoint {", ".join(FAULT_ENDPOINTS)};
  # also count (null: until cleared), status, retry_after, delay
  curl -s -X POST "$URL/_emulator/faults" -d '{{"kind": "rate_limit", "endpoint": "player"}}'
  # drop every pending fault
  curl -s -X DELETE "$URL/_emulator/faults"
  # change token_lifetime, refresh_token_max_age (null: never), revoke_on_refresh
  curl -s -X POST "$URL/_emulator/config" -d '{{"revoke_on_refresh": true}}'
  # requests per endpoint and grant type (DELETE sets them to zero)
  curl -s "$URL/_emulator/stats"
"""


def _object(body: bytes, allowed: frozenset[str]) -> dict[str, Any] | Reply:
    """The body as a JSON object with only `allowed` keys, or the 400 to send."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return 400, {"error": "the body must be a JSON object"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        return 400, {"error": f"unknown keys {unknown}; expected some of: {expected}"}
    return value


def inject(srv: EmulatorServer, body: bytes) -> Reply:
    """POST /_emulator/faults: queue a fault."""
    spec = _object(body, _FAULT_FIELDS)
    if isinstance(spec, tuple):
        return spec
    if "kind" not in spec:
        return 400, {"error": "a fault needs a kind"}
    try:
        fault = Fault(**spec)
    except (TypeError, ValueError) as err:
        return 400, {"error": str(err)}
    srv.faults.add(fault)
    return 200, {"pending": len(srv.faults)}


def clear_faults(srv: EmulatorServer, _body: bytes) -> Reply:
    """DELETE /_emulator/faults."""
    srv.faults.clear()
    return 200, {"pending": 0}


def revoke(srv: EmulatorServer, _body: bytes) -> Reply:
    """POST /_emulator/revoke."""
    srv.accounts.revoke_all()
    return 200, {"revoked": True}


def expire(srv: EmulatorServer, _body: bytes) -> Reply:
    """POST /_emulator/expire."""
    srv.accounts.expire_access_tokens()
    return 200, {"expired": True}


def age(srv: EmulatorServer, body: bytes) -> Reply:
    """POST /_emulator/age {"days" or "seconds"}: make every login older."""
    spec = _object(body, _AGE_FIELDS)
    if isinstance(spec, tuple):
        return spec
    days, seconds = spec.get("days", 0), spec.get("seconds", 0)
    try:
        total = float(days) * DAY + float(seconds)
        srv.accounts.age_logins(total)
    except (TypeError, ValueError):
        return 400, {"error": "days and seconds must be non-negative numbers"}
    return 200, {"aged_seconds": total}


def show_config(srv: EmulatorServer, _body: bytes = b"") -> Reply:
    """GET /_emulator/config."""
    accounts = srv.accounts
    return 200, {
        "token_lifetime": accounts.token_lifetime,
        "refresh_token_max_age": accounts.refresh_token_max_age,
        "revoke_on_refresh": accounts.revoke_on_refresh,
    }


def config(srv: EmulatorServer, body: bytes) -> Reply:
    """POST /_emulator/config: change some settings (all or nothing)."""
    spec = _object(body, _CONFIG_FIELDS)
    if isinstance(spec, tuple):
        return spec
    accounts = srv.accounts
    before = (accounts.token_lifetime, accounts.refresh_token_max_age)
    if not isinstance(spec.get("revoke_on_refresh", False), bool):
        return 400, {"error": "revoke_on_refresh must be true or false"}
    try:
        if "token_lifetime" in spec:
            accounts.token_lifetime = spec["token_lifetime"]
        if "refresh_token_max_age" in spec:
            accounts.refresh_token_max_age = spec["refresh_token_max_age"]
    except (TypeError, ValueError) as err:
        accounts.token_lifetime, accounts.refresh_token_max_age = before
        message = str(err) if isinstance(err, ValueError) else "the values must be numbers"
        return 400, {"error": message}
    if "revoke_on_refresh" in spec:
        accounts.revoke_on_refresh = spec["revoke_on_refresh"]
    return show_config(srv)


def stats(srv: EmulatorServer, _body: bytes) -> Reply:
    """GET /_emulator/stats."""
    return 200, srv.counters.snapshot()


def reset_stats(srv: EmulatorServer, _body: bytes) -> Reply:
    """DELETE /_emulator/stats."""
    srv.counters.reset()
    return 200, srv.counters.snapshot()


CONTROL: dict[tuple[str, str], Callable[[EmulatorServer, bytes], Reply]] = {
    ("POST", "/_emulator/faults"): inject,
    ("DELETE", "/_emulator/faults"): clear_faults,
    ("POST", "/_emulator/revoke"): revoke,
    ("POST", "/_emulator/age"): age,
    ("POST", "/_emulator/expire"): expire,
    ("GET", "/_emulator/config"): show_config,
    ("POST", "/_emulator/config"): config,
    ("GET", "/_emulator/stats"): stats,
    ("DELETE", "/_emulator/stats"): reset_stats,
}
