"""Reads the Mosquitto configuration on a machine (or a staging tree): every directive of
mosquitto.conf and the files its include_dir pulls in, the users of a password file, and what
the merge cannot reason about (auth plugins, dynamic security, per-listener security).
Standard library only: setup_broker.py runs with the system python3."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

MAIN_CONF = "/etc/mosquitto/mosquitto.conf"
CONF_D = "/etc/mosquitto/conf.d"
OUR_CONF = "/etc/mosquitto/conf.d/mqtt-tokend.conf"
OUR_DIR = "/etc/mosquitto/mqtt-tokend"
OUR_PASSWD = f"{OUR_DIR}/passwd"
OUR_ACL = f"{OUR_DIR}/acl"
CREDENTIALS = f"{OUR_DIR}/credentials"
ADDED_USERS = f"{OUR_DIR}/added-users"  # our users in a password file that is not ours
AGENT, PLAYER, HOMEASSISTANT = "mqtt-tokend", "lofi-player", "homeassistant"
OUR_USERS = (AGENT, PLAYER, HOMEASSISTANT)
PORT = 1883
# Directives a throwaway broker must not inherit: it writes no pid file, no log file and no
# persistence database of the real broker, and stays in the foreground.
NOT_FOR_VALIDATION = {
    "pid_file",
    "log_dest",
    "persistence",
    "persistence_file",
    "persistence_location",
    "autosave_interval",
    "user",
    "include_dir",
}
# Directives that hand authentication or access control to code the merge cannot read.
PLUGINS = ("plugin", "auth_plugin", "global_plugin")


class CannotMerge(Exception):
    """The existing setup needs a human: the message says why."""


@dataclass
class Directive:
    key: str
    value: str
    source: str  # the host path of the file it came from


class Host:
    """Paths on the machine being configured, which may be a staging tree (--root)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def path(self, host_path: str) -> Path:
        return Path(self.root + host_path)

    def read(self, host_path: str) -> str:
        """The file's text, or "" when it does not exist."""
        path = self.path(host_path)
        return path.read_text(errors="replace") if path.is_file() else ""


@dataclass
class Existing:
    """The broker configuration found on the machine (ours excluded)."""

    main_found: bool = False
    directives: list[Directive] = field(default_factory=list)
    include_dirs: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[str]:
        return [d.value for d in self.directives if d.key == key]

    @property
    def listeners(self) -> list[tuple[int, str]]:
        found = []
        for d in self.directives:
            if d.key in {"listener", "port"}:
                parts = d.value.split()
                if parts and parts[0].isdigit():
                    found.append((int(parts[0]), parts[1] if len(parts) > 1 else ""))
        return found

    @property
    def anonymous(self) -> bool | None:
        values = self.values("allow_anonymous")
        return values[-1] == "true" if values else None

    @property
    def untouched(self) -> bool:
        """Nothing configured by anyone: no listener, users, ACL or anonymous setting."""
        return not (
            self.listeners
            or self.values("password_file")
            or self.values("acl_file")
            or self.anonymous is not None
        )

    def one_listener_with_its_own_files(self) -> bool:
        """per_listener_settings with one listener, on 1883, whose password_file, acl_file
        and allow_anonymous all follow it: the same as global settings."""
        keys = [d.key for d in self.directives]
        listeners = [i for i, key in enumerate(keys) if key in {"listener", "port"}]
        if len(listeners) != 1 or [port for port, _ in self.listeners] != [PORT]:
            return False
        security = [
            i for i, k in enumerate(keys) if k in {"password_file", "acl_file", "allow_anonymous"}
        ]
        files = {"password_file", "acl_file"} <= set(keys)
        return files and all(i > listeners[0] for i in security)

    def unreadable(self) -> str | None:
        """Why the merge cannot know who may do what here (None: it can)."""
        for d in self.directives:
            if d.key in PLUGINS:
                kind = "dynamic security" if "dynamic_security" in d.value else "an auth plugin"
                return f"{kind} decides who may do what ({d.key} {d.value}, in {d.source})"
        per_listener = any(v == "true" for v in self.values("per_listener_settings"))
        if per_listener and not self.one_listener_with_its_own_files():
            return (
                "per_listener_settings is true: each listener has its own users and ACL, "
                f"and only a single listener on {PORT} with its own password_file and "
                "acl_file can be merged"
            )
        for key in ("password_file", "acl_file"):
            if len(set(self.values(key))) > 1:
                return f"{key} is set more than once; Mosquitto accepts one"
        return None


def parse_file(host: Host, host_path: str, found: Existing, *, ours: bool = False) -> None:
    for raw in host.read(host_path).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "include_dir":
            found.include_dirs.append(value)
            directory = host.path(value)
            if directory.is_dir():
                for conf in sorted(directory.glob("*.conf")):
                    included = value.rstrip("/") + "/" + conf.name
                    if ours or included != OUR_CONF:
                        parse_file(host, included, found, ours=ours)
        found.directives.append(Directive(key, value, host_path))


def read_existing(host: Host, *, ours: bool = False) -> Existing:
    """The configuration on the machine; with `ours`, including mqtt-tokend.conf."""
    found = Existing()
    if host.path(MAIN_CONF).is_file():
        found.main_found = True
        parse_file(host, MAIN_CONF, found, ours=ours)
    return found


def passwd_users(text: str) -> list[str]:
    """The user names of a Mosquitto password file, in order."""
    return [
        line.split(":", 1)[0]
        for line in text.splitlines()
        if ":" in line and not line.startswith("#")
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rooted(host: Host, value: str) -> str:
    """A value naming a file on the (possibly staged) machine, as a path this process opens."""
    parts = value.split()
    if parts and parts[-1].startswith("/") and host.root:
        candidate = host.path(parts[-1])
        if candidate.exists() or candidate.parent.exists():
            parts[-1] = str(candidate)
    return " ".join(parts)


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
