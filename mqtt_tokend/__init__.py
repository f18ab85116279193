"""mqtt-tokend: one agent owns the Spotify session and shares its token over MQTT.

For a player or a script: `TokenConsumer` stays subscribed and hands out the newest valid
`Token`; `fetch_token` takes one once; every error the package raises on purpose is a
`TokendError`. They load on first use, so `import mqtt_tokend` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mqtt_tokend import _version

__version__ = _version.__version__  # kept in a leaf module, so no floor imports the root

__all__ = ["Token", "TokenConsumer", "TokendError", "fetch_token"]

_WHERE = {
    "Token": "mqtt_tokend.contract.wire",
    "TokenConsumer": "mqtt_tokend.consumer",
    "fetch_token": "mqtt_tokend.consumer",
    "TokendError": "mqtt_tokend.errors",
}

if TYPE_CHECKING:
    from mqtt_tokend.consumer import TokenConsumer, fetch_token
    from mqtt_tokend.contract.wire import Token
    from mqtt_tokend.errors import TokendError


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
