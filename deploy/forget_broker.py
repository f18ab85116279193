"""Removes what an installed agent left on the broker: its retained messages (token, health,
availability, devices, login) and its Home Assistant device. Run by
`setup_auto_tokens.sh --uninstall --purge` with the installed venv's Python, as the agent's
broker user:

    /opt/mqtt-tokend/venv/bin/python deploy/forget_broker.py /etc/mqtt-tokend/config.toml
"""

from __future__ import annotations

import sys

from mqtt_tokend.config import load_config
from mqtt_tokend.dev.demo import clear_retained
from mqtt_tokend.errors import TokendError


def main(argv: list[str]) -> int:
    try:
        config = load_config(argv[1] if len(argv) > 1 else None)
        count = clear_retained(
            config.mqtt, config.mqtt.base_topic, config.homeassistant.discovery_prefix
        )
    except TokendError as err:
        print(f"could not clear the broker: {err}", file=sys.stderr)
        return 1
    print(f"removed {count} retained topics and the Home Assistant device from the broker")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
