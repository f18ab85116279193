"""Installs a planned broker merge: the users staged with make_passwords.sh, the merged
configuration checked on a throwaway Mosquitto, the files written with their final mode and
owner from the first byte, and Mosquitto restarted, or everything put back as it was.
Standard library only."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker_conf import (
    ADDED_USERS,
    AGENT,
    CREDENTIALS,
    HOMEASSISTANT,
    MAIN_CONF,
    NOT_FOR_VALIDATION,
    OUR_CONF,
    OUR_PASSWD,
    OUR_USERS,
    Directive,
    Existing,
    Host,
    free_port,
    mosquitto_binary,
    passwd_users,
    rooted,
)
from broker_plan import Plan

WAIT = 10.0


def say(text: str) -> None:
    print(text, flush=True)


def validation_conf(
    host: Host, existing: Existing, planned: Plan, staged: dict[str, Path]
) -> tuple[str, list[int]]:
    """One self-contained config: the existing directives plus ours, every listener moved to a
    free loopback port, the planned files read from the scratch copies."""
    lines, ports = [], []
    ours = [
        Directive(*line.split(" ", 1), OUR_CONF)
        for line in planned.conf.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for d in [*existing.directives, *ours]:
        if d.key in NOT_FOR_VALIDATION:
            continue
        if d.key in {"listener", "port"}:
            parts = d.value.split()
            if parts and parts[0].isdigit() and parts[0] != "0":
                ports.append(free_port())
                lines.append(f"listener {ports[-1]} 127.0.0.1")
                continue
        if d.key in {"password_file", "acl_file"} and d.value in staged:
            lines.append(f"{d.key} {staged[d.value]}")
            continue
        lines.append(f"{d.key} {rooted(host, d.value)}")
    lines += ["persistence false", "log_dest stdout"]
    if os.geteuid() == 0:
        lines.append("user root")  # the scratch copies are root's; the real broker is unchanged
    return "\n".join(lines) + "\n", ports


def mqtt_login(port: int, username: str, password: str) -> int:
    """MQTT 3.1.1 CONNECT with a user name and password; returns the CONNACK return code."""

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("!H", len(raw)) + raw

    body = text("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10)
    body += text(f"setup-check-{os.urandom(8).hex()}") + text(username) + text(password)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = sock.recv(4)
    return reply[3] if len(reply) == 4 and reply[0] == 0x20 else 255


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def validate(conf: str, ports: list[int], scratch: Path, login: tuple[str, str] | None) -> None:
    """Start a throwaway broker on the merged config; raise RuntimeError if it does not run or
    refuses the agent."""
    binary = mosquitto_binary()
    if binary is None:
        say("broker check skipped: the mosquitto binary is not installed")
        return
    path = scratch / "validate.conf"
    path.write_text(conf)
    log = scratch / "validate.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-c", str(path)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if process.poll() is not None:
                raise RuntimeError(log.read_text(errors="replace").strip())
            if all(_accepts(port) for port in ports):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the merged configuration did not open its listeners")
            time.sleep(0.02)
        if login is not None and ports:
            code = mqtt_login(ports[0], *login)
            if code != 0:
                raise RuntimeError(f"the merged broker refused the agent (CONNACK {code})")
    finally:
        process.terminate()
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=WAIT)


def agent_login(credentials: Path) -> tuple[str, str] | None:
    password = os.environ.get("MQTT_TOKEND_MQTT_PASSWORD", "")
    if not password and credentials.is_file():
        for line in credentials.read_text().splitlines():
            if line.startswith(f"{AGENT}:"):
                password = line.split(":", 1)[1]
    return (AGENT, password) if password else None


@dataclass
class Change:
    host_path: str
    content: bytes
    mode: int
    owner: str  # "user:group", applied on the host only; "" keeps the existing owner


def write(host: Host, change: Change, on_host: bool) -> None:
    """Replace the file atomically. The new file is created with its final mode and owner
    before the first byte goes in (an existing file's mode and owner are kept), so a secret is
    never readable by others, not even for a moment."""
    target = host.path(change.host_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.urandom(6).hex()}.new")
    exists = target.exists()
    mode = (target.stat().st_mode & 0o7777) if exists else change.mode
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if on_host and exists:
            info = target.stat()
            os.fchown(descriptor, info.st_uid, info.st_gid)
        elif on_host and change.owner:
            user, _, group = change.owner.partition(":")
            shutil.chown(temporary, user, group or None)
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(change.content)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    temporary.replace(target)


def restart(command: str | None, on_host: bool, verb: str) -> bool | None:
    """Restart (or reload) the broker; None when there is nothing here to restart."""
    if command is None:
        if not on_host:
            say(f"would run: systemctl {verb} mosquitto.service")
            return None
        if not Path("/run/systemd/system").is_dir():
            say("systemd is not running here: restart Mosquitto to load its new configuration")
            return None
        command = f"systemctl {verb} mosquitto.service"
    result = subprocess.run(command, shell=True, check=False, timeout=120)  # noqa: S602
    return result.returncode == 0


@dataclass
class Staged:
    """The password file and credentials with our users added, in the scratch directory."""

    passwd: Path
    credentials: Path
    records: list[Change] = field(default_factory=list)  # written with the broker files


def _drop_users(path: Path, users: set[str]) -> None:
    if path.is_file() and users:
        kept = [line for line in path.read_text().splitlines() if line.split(":")[0] not in users]
        path.write_text("".join(f"{line}\n" for line in kept))


def stage_users(host: Host, deploy: Path, planned: Plan, scratch: Path) -> Staged:
    """Copies of the password file and credentials with our users added by make_passwords.sh
    (not `homeassistant` when Home Assistant has an account of its own); plus the record of
    which users we added to somebody else's password file (--remove takes out only those)."""
    staged = Staged(scratch / "passwd", scratch / "credentials")
    for source, copy in ((planned.passwd, staged.passwd), (CREDENTIALS, staged.credentials)):
        if host.path(source).is_file():
            shutil.copyfile(host.path(source), copy)
    before = passwd_users(staged.passwd.read_text()) if staged.passwd.is_file() else []
    command = ["sh", str(deploy / "mosquitto" / "make_passwords.sh"), "--file", str(staged.passwd)]
    command += ["--credentials", str(staged.credentials)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"could not add the broker users: {result.stderr.strip()}")
    if planned.ha != HOMEASSISTANT and HOMEASSISTANT not in before:
        _drop_users(staged.passwd, {HOMEASSISTANT})
        _drop_users(staged.credentials, {HOMEASSISTANT})
    for line in result.stdout.splitlines():
        if planned.ha == HOMEASSISTANT or not line.startswith(HOMEASSISTANT):
            say(f"broker user {line.replace(str(staged.credentials), CREDENTIALS)}")
    if staged.credentials.is_file():
        staged.records.append(Change(CREDENTIALS, staged.credentials.read_bytes(), 0o600, ""))
    if planned.passwd != OUR_PASSWD:
        known = host.read(ADDED_USERS).split()
        now = passwd_users(staged.passwd.read_text())
        added = [user for user in OUR_USERS if user in now and user not in before]
        if added or known:
            text = "".join(f"{user}\n" for user in dict.fromkeys(known + added))
            staged.records.append(Change(ADDED_USERS, text.encode(), 0o600, ""))
    return staged


def apply(host: Host, changes: list[Change], on_host: bool) -> dict[str, bytes | None]:
    """Writes the changed files; returns each one's previous content (None: it was new)."""
    backups: dict[str, bytes | None] = {}
    try:
        for change in changes:
            target = host.path(change.host_path)
            old = target.read_bytes() if target.is_file() else None
            if old == change.content:
                continue
            write(host, change, on_host)
            backups[change.host_path] = old
            say(f"{'updated' if old is not None else 'installed'} {change.host_path}")
    except OSError:
        say("could not write the broker files: putting the previous ones back")
        roll_back(host, backups, on_host)
        raise
    return backups


def roll_back(host: Host, backups: dict[str, bytes | None], on_host: bool) -> None:
    """Every file as it was: the new ones removed (and directories the install made), the
    others rewritten with their old bytes (mode and owner kept)."""
    for host_path, old in backups.items():
        if old is None:
            host.path(host_path).unlink(missing_ok=True)
        else:
            write(host, Change(host_path, old, 0o600, ""), on_host)
        say(f"restored {host_path}")


def restart_or_roll_back(
    host: Host,
    command: str | None,
    backups: dict[str, bytes | None],
    on_host: bool,
    made_dirs: list[Path],
) -> int:
    verb = "restart" if {OUR_CONF, MAIN_CONF} & set(backups) else "reload-or-restart"
    done = restart(command, on_host, verb)
    if done is None:
        return 0
    if done:
        say(f"mosquitto: {verb} done")
        return 0
    say(f"Mosquitto did not {verb}: putting the previous files back")
    roll_back(host, backups, on_host)
    for directory in reversed(made_dirs):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    if restart(command, on_host, "restart"):
        say("mosquitto: restarted with the previous files")
    else:
        say("mosquitto still does not start: see journalctl -u mosquitto")
    return 1
