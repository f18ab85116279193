#!/usr/bin/env python3
"""Adds mqtt-tokend's broker users, ACL lines and settings to the Mosquitto on this machine
without breaking what is already there. Called by setup_auto_tokens.sh; standard library only
(it runs with the system python3, before or without the virtual environment).

What it does, in order:
  1. reads /etc/mosquitto/mosquitto.conf and every file its include_dir pulls in: listeners,
     password_file, acl_file, allow_anonymous, per_listener_settings;
  2. plans the files: an untouched broker (no listener, no users, no ACL of its own) gets the
     shipped configuration; a configured one keeps its listener, password file and ACL file and
     gets our users and a marked block of ACL lines added to them (existing users and anonymous
     clients keep what they could do, minus the agent's topics);
  3. writes the planned files to a scratch directory and starts a throwaway `mosquitto -c` on
     free ports from the merged configuration, then logs in as the agent: if that fails, nothing
     is written;
  4. installs the files, restarts (or reloads) Mosquitto, and if that fails puts the previous
     files back and restarts again.
Where it cannot merge (per_listener_settings, no include_dir, two password files) it writes
nothing and prints the exact lines to add. Exit status: 0 done, 1 failed (nothing changed or
rolled back), 3 cannot merge (lines printed, nothing changed).

  setup_broker.py --root DIR --deploy DEPLOY [--owner USER:GROUP] [--restart CMD]
  setup_broker.py --root DIR --deploy DEPLOY --remove      (for --uninstall --purge)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
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
OUR_USERS = ("mqtt-tokend", "lofi-player", "homeassistant")
BASE = "lofi/spotify"
PORT = 1883
BEGIN = "# BEGIN mqtt-tokend (added by setup_auto_tokens.sh; --uninstall --purge removes it)"
END = "# END mqtt-tokend"
EXIT_CANNOT_MERGE = 3
WAIT = 10.0
# Directives a throwaway validation broker must not inherit: it writes no pid file, no log file
# and no persistence database of the real broker, and stays in the foreground.
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


class CannotMerge(Exception):
    """The existing setup needs a human: the message says why, `lines` what to add."""


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Directive:
    key: str
    value: str
    source: str  # the host path of the file it came from


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


class Host:
    """Paths on the machine being configured, which may be a staging tree (--root)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def path(self, host_path: str) -> Path:
        return Path(self.root + host_path)


def parse_file(host: Host, host_path: str, found: Existing, *, ours: bool = False) -> None:
    for raw in host.path(host_path).read_text(errors="replace").splitlines():
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
    return [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]


def acl_users(text: str) -> list[str]:
    users: list[str] = []
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) >= 2 and parts[0] == "user" and parts[1] not in users:
            users.append(parts[1])
    return users


def without_block(text: str) -> str:
    """`text` without our marked block (and the blank line before it)."""
    lines = text.splitlines()
    if BEGIN not in lines:
        return text
    start = lines.index(BEGIN)
    end = lines.index(END, start) if END in lines[start:] else len(lines) - 1
    while start > 0 and not lines[start - 1].strip():
        start -= 1
    kept = lines[:start] + lines[end + 1 :]
    return "\n".join(kept) + ("\n" if kept else "")


def shipped_sections(deploy: Path) -> str:
    """The user sections of the shipped ACL, without its header comments."""
    lines = (deploy / "mosquitto" / "acl").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("user "))
    while first > 0 and lines[first - 1].startswith("#"):
        first -= 1
    return "\n".join(lines[first:]) + "\n"


@dataclass
class Plan:
    mode: str  # "fresh" or "merge"
    conf: str  # the content of OUR_CONF
    passwd: str  # host path of the password file our users go into
    acl: str  # host path of the ACL file
    acl_text: str  # its planned content
    notes: list[str] = field(default_factory=list)
    main: str | None = None  # the main mosquitto.conf, when it needs our include_dir


def with_include(host: Host, existing: Existing) -> str | None:
    """The main mosquitto.conf with `include_dir /etc/mosquitto/conf.d` appended, when it has a
    main file without that line (None: nothing to add)."""
    if not existing.main_found or CONF_D in {d.rstrip("/") for d in existing.include_dirs}:
        return None
    text = host.path(MAIN_CONF).read_text()
    return (
        text.rstrip("\n")
        + f"\n\n# Added by mqtt-tokend's setup_auto_tokens.sh\ninclude_dir {CONF_D}\n"
    )


FRESH_NOTE = (
    "Mosquitto had no listener, users or ACL of its own (its local-only mode, which lets "
    "anonymous clients in on loopback): it now asks every client for a user name and password. "
    "To keep anonymous clients, see 'An existing broker' in deploy/README.md."
)
SHARED_NOTE = (
    "Other clients share this broker, so max_packet_size and use_username_as_clientid were not "
    f"set (they apply to every client). If every client allows it, add to {OUR_CONF}: "
    "'max_packet_size 16384' and 'use_username_as_clientid true'."
)
DENY = f"topic deny {BASE}/#"


def plan(host: Host, deploy: Path, existing: Existing) -> Plan:
    main = with_include(host, existing)
    if existing.untouched:
        conf = (deploy / "mosquitto" / "mosquitto.conf").read_text()
        acl_text = (deploy / "mosquitto" / "acl").read_text()
        notes = [FRESH_NOTE] if existing.main_found else []
        return Plan("fresh", conf, OUR_PASSWD, OUR_ACL, acl_text, notes, main)

    # A configured broker: keep everything it has, add only what is missing.
    if any(v == "true" for v in existing.values("per_listener_settings")):
        raise CannotMerge("per_listener_settings is true: each listener has its own users and ACL")
    for key in ("password_file", "acl_file"):
        if len(set(existing.values(key))) > 1:
            raise CannotMerge(f"{key} is set more than once; Mosquitto accepts one")
    passwd = (existing.values("password_file") or [OUR_PASSWD])[0]
    acl = (existing.values("acl_file") or [OUR_ACL])[0]
    lines = ["# mqtt-tokend, merged into the Mosquitto setup found by setup_auto_tokens.sh."]
    if not any(port == PORT for port, _bind in existing.listeners):
        lines += [
            "# Loopback only: the player, Home Assistant and the agent run on this Pi.",
            f"listener {PORT} 127.0.0.1",
        ]
    lines += [
        f"{key} {path}"
        for key, path in (("password_file", passwd), ("acl_file", acl))
        if path in {OUR_PASSWD, OUR_ACL}
    ]
    lines += [
        "# Small packets on loopback otherwise wait ~40 ms for the peer's delayed ACK.",
        "set_tcp_nodelay true",
    ]
    notes = []
    if not existing.values("max_packet_size") and not existing.values("use_username_as_clientid"):
        notes.append(SHARED_NOTE)
    if acl != OUR_ACL:
        acl_text = merged_acl(host, deploy, acl)
    else:
        acl_text = new_acl(host, deploy, passwd, bool(existing.anonymous))
        notes.append(f"A user added to {passwd} later gets no topics until {OUR_ACL} names it.")
    return Plan("merge", "\n".join(lines) + "\n", passwd, acl, acl_text, notes, main)


def merged_acl(host: Host, deploy: Path, acl: str) -> str:
    """Their ACL file with our sections in a marked block at the end. Mosquitto merges repeated
    `user` sections, so their users also lose the agent's topics (they never had them)."""
    current = without_block(host.path(acl).read_text()) if host.path(acl).is_file() else ""
    block = [BEGIN, shipped_sections(deploy).rstrip("\n")]
    for user in acl_users(current):
        if user not in OUR_USERS:
            block += [f"user {user}", DENY]
    block.append(END)
    separator = "\n\n" if current.strip() else ""
    return current.rstrip("\n") + separator + "\n".join(block) + "\n"


def new_acl(host: Host, deploy: Path, passwd: str, anonymous: bool) -> str:
    """An ACL where there was none: everyone who could connect keeps every topic but ours."""
    head = [
        "# Mosquitto ACL written by setup_auto_tokens.sh: the broker had none, so every",
        "# client that could connect before keeps every topic, except the agent's.",
    ]
    everything = [DENY, "topic readwrite #", "topic read $SYS/#"]
    if anonymous:
        head += ["# Anonymous clients (allow_anonymous true):", *everything]
    text = "\n".join(head) + "\n\n" + shipped_sections(deploy)
    path = host.path(passwd)
    for user in passwd_users(path.read_text()) if path.is_file() else []:
        if user not in OUR_USERS:
            text += "\n" + "\n".join([f"user {user}", *everything]) + "\n"
    return text


def instructions(plan_error: CannotMerge, deploy: Path) -> list[str]:
    """The exact lines a human adds when the setup cannot be merged automatically."""
    return [
        f"Cannot merge into this Mosquitto setup: {plan_error}. Nothing was changed.",
        "Add these yourself, then restart Mosquitto:",
        f"  in the listener that serves 127.0.0.1:{PORT} (or globally), if missing:",
        "      listener 1883 127.0.0.1",
        "  the password file that listener uses gets the three users:",
        "      sh /path/to/mqtt-tokend/deploy/mosquitto/make_passwords.sh --file PASSWORD_FILE",
        "  the ACL file that listener uses gets these lines at its end:",
        *("      " + line for line in shipped_sections(deploy).splitlines()),
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
    body += text(f"setup-check-{os.getpid()}") + text(username) + text(password)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = sock.recv(4)
    return reply[3] if len(reply) == 4 and reply[0] == 0x20 else 255


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


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


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def agent_login(credentials: Path) -> tuple[str, str] | None:
    password = os.environ.get("MQTT_TOKEND_MQTT_PASSWORD", "")
    if not password and credentials.is_file():
        for line in credentials.read_text().splitlines():
            if line.startswith("mqtt-tokend:"):
                password = line.split(":", 1)[1]
    return ("mqtt-tokend", password) if password else None


@dataclass
class Change:
    host_path: str
    content: bytes
    mode: int
    owner: str  # "user:group", applied on the host only; "" keeps the existing owner


def write(host: Host, change: Change, on_host: bool) -> None:
    target = host.path(change.host_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".new")
    temporary.write_bytes(change.content)
    if target.exists():
        shutil.copystat(target, temporary)
        if on_host:
            info = target.stat()
            os.chown(temporary, info.st_uid, info.st_gid)
    else:
        temporary.chmod(change.mode)
        if on_host and change.owner:
            user, _, group = change.owner.partition(":")
            shutil.chown(temporary, user, group or None)
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
    records: list[Change]  # written only once the broker runs with our users


def stage_users(host: Host, deploy: Path, planned: Plan, scratch: Path) -> Staged:
    """Copies of the password file and credentials with our users added by make_passwords.sh;
    plus the record of which users we added to somebody else's password file (--remove takes
    out only those)."""
    staged = Staged(scratch / "passwd", scratch / "credentials", [])
    for source, copy in ((planned.passwd, staged.passwd), (CREDENTIALS, staged.credentials)):
        if host.path(source).is_file():
            shutil.copyfile(host.path(source), copy)
    before = passwd_users(staged.passwd.read_text()) if staged.passwd.is_file() else []
    command = ["sh", str(deploy / "mosquitto" / "make_passwords.sh"), "--file", str(staged.passwd)]
    command += ["--credentials", str(staged.credentials)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"could not add the broker users: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        say(f"broker user {line.replace(str(staged.credentials), CREDENTIALS)}")
    if staged.credentials.is_file():
        staged.records.append(Change(CREDENTIALS, staged.credentials.read_bytes(), 0o600, ""))
    if planned.passwd != OUR_PASSWD:
        record = host.path(ADDED_USERS)
        known = record.read_text().split() if record.is_file() else []
        added = [user for user in OUR_USERS if user not in before]
        if added or known:
            text = "".join(f"{user}\n" for user in dict.fromkeys(known + added))
            staged.records.append(Change(ADDED_USERS, text.encode(), 0o644, ""))
    return staged


def apply(host: Host, changes: list[Change], on_host: bool) -> dict[str, bytes | None]:
    """Writes the changed files; returns each one's previous content (None: it was new)."""
    backups: dict[str, bytes | None] = {}
    for change in changes:
        target = host.path(change.host_path)
        old = target.read_bytes() if target.is_file() else None
        if old == change.content:
            continue
        backups[change.host_path] = old
        write(host, change, on_host)
        say(f"{'updated' if old is not None else 'installed'} {change.host_path}")
    return backups


def restart_or_roll_back(
    host: Host, command: str | None, backups: dict[str, bytes | None], on_host: bool
) -> int:
    verb = "restart" if {OUR_CONF, MAIN_CONF} & set(backups) else "reload-or-restart"
    done = restart(command, on_host, verb)
    if done is None:
        return 0
    if done:
        say(f"mosquitto: {verb} done")
        return 0
    say(f"Mosquitto did not {verb}: putting the previous files back")
    for host_path, old in backups.items():
        if old is None:
            host.path(host_path).unlink()
        else:
            host.path(host_path).write_bytes(old)
        say(f"restored {host_path}")
    if restart(command, on_host, "restart"):
        say("mosquitto: restarted with the previous files")
    else:
        say("mosquitto still does not start: see journalctl -u mosquitto")
    return 1


def install(args: argparse.Namespace) -> int:
    host = Host(args.root)
    deploy = Path(args.deploy)
    on_host = not host.root
    existing = read_existing(host)
    try:
        planned = plan(host, deploy, existing)
    except CannotMerge as error:
        for line in instructions(error, deploy):
            say(line)
        return EXIT_CANNOT_MERGE

    scratch = Path(tempfile.mkdtemp(prefix="mqtt-tokend-broker-"))
    try:
        staged = stage_users(host, deploy, planned, scratch)
        staged_acl = scratch / "acl"
        staged_acl.write_text(planned.acl_text)
        files = {planned.passwd: staged.passwd, planned.acl: staged_acl}
        conf, ports = validation_conf(host, existing, planned, files)
        validate(conf, ports, scratch, agent_login(staged.credentials))
    except RuntimeError as error:
        say(f"The merged Mosquitto configuration does not work; nothing was changed:\n{error}")
        return 1
    else:
        say(f"broker check passed: a throwaway Mosquitto ran the {planned.mode} configuration")
        group = args.owner.split(":")[-1]
        changes = [
            Change(OUR_CONF, planned.conf.encode(), 0o644, "root:root"),
            Change(planned.acl, planned.acl_text.encode(), 0o640, f"root:{group}"),
            Change(planned.passwd, staged.passwd.read_bytes(), 0o600, args.owner),
        ]
        if planned.main is not None:
            changes.append(Change(MAIN_CONF, planned.main.encode(), 0o644, "root:root"))
        backups = apply(host, changes, on_host)
        for note in planned.notes:
            say(f"note: {note}")
        apply(host, staged.records, on_host)
        return restart_or_roll_back(host, args.restart, backups, on_host) if backups else 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove(args: argparse.Namespace) -> int:
    """Undo install: our block out of a shared ACL, our users out of a shared password file."""
    host = Host(args.root)
    existing = read_existing(host)
    for acl in set(existing.values("acl_file")) - {OUR_ACL}:
        path = host.path(acl)
        if path.is_file() and BEGIN in path.read_text():
            path.write_text(without_block(path.read_text()))
            say(f"removed the mqtt-tokend lines from {acl}")
    for passwd in set(existing.values("password_file")) - {OUR_PASSWD}:
        path = host.path(passwd)
        if not path.is_file():
            continue
        # Only the users this installer added: a user the owner had before stays.
        record = host.path(ADDED_USERS)
        added = set(record.read_text().split()) if record.is_file() else set()
        kept = [
            line for line in path.read_text().splitlines() if line.split(":", 1)[0] not in added
        ]
        if len(kept) != len(path.read_text().splitlines()):
            path.write_text("\n".join(kept) + ("\n" if kept else ""))
            say(f"removed the mqtt-tokend users from {passwd}")
    for path in (host.path(OUR_CONF), host.path(OUR_DIR)):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="")
    parser.add_argument("--deploy", required=True)
    parser.add_argument("--owner", default="root:root", help="owner of new broker files")
    parser.add_argument("--restart", help="command that restarts Mosquitto (default systemctl)")
    parser.add_argument("--remove", action="store_true")
    args = parser.parse_args(argv)
    if args.restart is not None:
        args.restart = args.restart.strip() or None
    return remove(args) if args.remove else install(args)


if __name__ == "__main__":
    sys.exit(main())
