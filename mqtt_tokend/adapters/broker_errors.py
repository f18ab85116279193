"""What a failed broker connection means to a person: unreachable, a TLS failure, or a refused
login (which names the password that was sent, where it came from, and how to fix it).

No paho here: the MQTT adapter hands over the facts (the address, the reason's name).
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping

from mqtt_tokend.config import MQTT_PASSWORD_ENV, Config, MqttConfig
from mqtt_tokend.config_checks import expand
from mqtt_tokend.contract.wording import login_refused_instructions
from mqtt_tokend.errors import BrokerError, BrokerLoginRefused

# CONNACK reasons that refuse the login itself, not the connection (MQTT 5 names; paho gives
# MQTT 3.1.1's return codes 4 and 5 the same names).
LOGIN_REFUSALS = frozenset(
    {"Bad user name or password", "Not authorized", "Bad authentication method"}
)


def describe(config: MqttConfig) -> str:
    """host:port for messages."""
    return f"{config.host}:{config.port}"


def unreachable(config: MqttConfig, err: OSError) -> BrokerError:
    """The TCP (or TLS) connection could not be made."""
    if isinstance(err, ssl.SSLError):
        detail = getattr(err, "verify_message", None) or err.reason or err
        return BrokerError(
            f"cannot reach the MQTT broker at {describe(config)}: the TLS handshake failed "
            f"({detail}); check mqtt.ca_file, and that the broker's certificate is for "
            f"{config.host}"
        )
    return BrokerError(
        f"cannot reach the MQTT broker at {describe(config)} ({err.strerror or err}); "
        "is Mosquitto running?"
    )


def refused(config: MqttConfig, reason: str) -> BrokerError:
    """The broker answered CONNECT with a failure: a refused login is an error of its own."""
    if reason in LOGIN_REFUSALS:
        who = f"user '{config.username}'" if config.username else "an anonymous client"
        return BrokerLoginRefused(
            f"the broker at {describe(config)} is up but refused the login of {who} ({reason})"
        )
    return BrokerError(f"the broker at {describe(config)} refused the connection ({reason})")


def password_source(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """Where the broker password that was sent comes from: the environment, a password file,
    the config file itself, or nowhere. Never the password."""
    env = os.environ if environ is None else environ
    if env.get(MQTT_PASSWORD_ENV):
        return f"${MQTT_PASSWORD_ENV}"
    where = config.path
    if where is None:
        return "mqtt.password"
    try:
        table = tomllib.loads(where.read_text(encoding="utf-8")).get("mqtt", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        table = {}
    file = table.get("password_file") if isinstance(table, dict) else None
    if isinstance(file, str) and file:
        path = expand(file, env)
        return f"{path if path.is_absolute() else where.parent / path} (mqtt.password_file)"
    if isinstance(table, dict) and table.get("password"):
        return f"mqtt.password in {where}"
    return f"{where} (no mqtt.password_file set)"


def refused_login(config: Config, err: BrokerLoginRefused) -> tuple[str, str]:
    """What happened and what to do, for a refused login: (problem, instructions)."""
    source = password_source(config)
    return (
        f"{err.problem}: the password sent comes from {source}",
        login_refused_instructions(config.mqtt.username, source),
    )
