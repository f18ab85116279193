"""`status` for any user: a plain user on an installed Pi may not read the agent's config (it
holds the broker password), so it gets what the local broker shows an anonymous client."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TextIO

from mqtt_tokend.cli.commands import format_status, read_published, status
from mqtt_tokend.config import config_path, load_config, parse_config
from mqtt_tokend.errors import BrokerError


def status_for_anyone(
    config_file: str | None, *, as_json: bool, timeout: float, out: TextIO = sys.stdout
) -> int:
    """The agent's status with the config when this user may read it; else the health record
    the local broker shows an anonymous client; else one sentence naming `sudo`."""
    path = config_path(config_file)
    if not path.is_file() or os.access(path, os.R_OK):
        return status(load_config(config_file), as_json=as_json, timeout=timeout, out=out)
    anonymous = parse_config({"spotify": {"client_id": "-"}}, base_dir=path.parent, environ={})
    try:
        health, online = read_published(anonymous, timeout=timeout)
    except BrokerError:
        health, online = None, None
    if health is None:
        print(
            f"mqtt-tokend: this user may not read {path}, and the local broker shows it no "
            "health record: run `sudo mqtt-tokend status`",
            file=sys.stderr,
        )
        return 1
    if as_json:
        record = {"source": "broker (anonymous)", "online": online, "health": health}
        print(json.dumps(record, indent=2), file=out)
    else:
        print(format_status(health, online=online, now=time.time()), file=out)
    return 0
