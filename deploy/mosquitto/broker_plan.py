"""Plans the merge of mqtt-tokend into the Mosquitto found on a machine: which files change
and the ACL each principal ends up with, proven against the guarantee list (broker_rights)
on the effective-rights model (broker_acl) before anything is written. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import broker_acl
import broker_rights as rights
from broker_conf import (
    ADDED_USERS,
    AGENT,
    CONF_D,
    CREDENTIALS,
    HOMEASSISTANT,
    MAIN_CONF,
    OUR_ACL,
    OUR_CONF,
    OUR_PASSWD,
    OUR_USERS,
    PLAYER,
    PORT,
    CannotMerge,
    Existing,
    Host,
    passwd_users,
)

BEGIN = "# BEGIN mqtt-tokend (added by setup_auto_tokens.sh; --uninstall --purge removes it)"
END = "# END mqtt-tokend"
BEGIN_ANONYMOUS = "# BEGIN mqtt-tokend anonymous (the agent's topics are closed to them)"
HA_MARK = "# Home Assistant's account: "
LOCK_DOWN_OPTION = "setup_auto_tokens.sh --lock-down-broker"
LOCKED_NOTE = (
    "Locked down (--lock-down-broker): Mosquitto now asks every client for a user name and "
    "password and refuses packets above 16 KiB. Anonymous clients are refused. To let them "
    "back in, see 'An existing broker' in deploy/README.md."
)
LOCAL_NOTE = (
    "Mosquitto had its stock configuration (local-only mode: anonymous clients on loopback). "
    f"Anonymous clients on 127.0.0.1:{PORT} still connect and keep every topic except the "
    f"agent's ({', '.join(rights.AGENT_FILTERS)}); the agent, the player and Home Assistant "
    f"log in with their passwords. On a Pi where nothing else uses this broker, run "
    f"{LOCK_DOWN_OPTION} to refuse anonymous clients and packets above 16 KiB."
)
SHARED_NOTE = (
    "Other clients share this broker, so max_packet_size was not set (it applies to every "
    f"client). If every client allows it, add 'max_packet_size 16384' to {OUR_CONF}."
)

NEW_HA = (
    f"Home Assistant logs in as '{HOMEASSISTANT}' (its password is in {CREDENTIALS}): set it "
    "in Home Assistant's MQTT integration. If Home Assistant already has an account on this "
    "broker, run this again with --ha-user NAME instead."
)
ANONYMOUS_HA = (
    "Anonymous clients get none of the agent's topics, so a Home Assistant that connects "
    f"without a user name sees no mqtt-tokend device. {NEW_HA}"
)


@dataclass
class Plan:
    mode: str  # "local" (stock, anonymous kept), "locked-down" (shipped) or "merge"
    conf: str  # the content of OUR_CONF
    passwd: str  # host path of the password file our users go into
    acl: str  # host path of the ACL file
    acl_text: str  # its planned content
    ha: str  # Home Assistant's account
    notes: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)  # per principal, what changed
    main: str | None = None  # the main mosquitto.conf, when it needs our include_dir


def without_blocks(text: str) -> str:
    """`text` without our marked blocks (and the blank line before each)."""
    lines = text.splitlines()
    for begin in (BEGIN, BEGIN_ANONYMOUS):
        while begin in lines:
            start = lines.index(begin)
            end = lines.index(END, start) if END in lines[start:] else len(lines) - 1
            stop = end + 1
            while start > 0 and not lines[start - 1].strip():
                start -= 1
            if start == 0:
                while stop < len(lines) and not lines[stop].strip():
                    stop += 1
            lines = lines[:start] + lines[stop:]
    return "\n".join(lines) + ("\n" if lines else "")


def shipped_sections(deploy: Path, *, with_ha: bool) -> list[str]:
    """The user sections of the shipped ACL (Home Assistant's only `with_ha`)."""
    lines = (deploy / "mosquitto" / "acl").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("user "))
    while first > 0 and lines[first - 1].startswith("#"):
        first -= 1
    kept, skipping = [], False
    for line in lines[first:]:
        if line.startswith("user "):
            skipping = not with_ha and line.split()[1] == HOMEASSISTANT
        if not skipping:
            kept.append(line)
    while kept and (not kept[-1].strip() or kept[-1].startswith("#")):
        kept.pop()
    return kept


def recorded_ha(text: str) -> str | None:
    """The Home Assistant account an earlier run wrote into its block."""
    for line in text.splitlines():
        if line.startswith(HA_MARK):
            return line[len(HA_MARK) :].strip() or None
    return None


def with_include(host: Host, existing: Existing) -> str | None:
    """The main mosquitto.conf with `include_dir /etc/mosquitto/conf.d` appended, when it has a
    main file without that line (None: nothing to add)."""
    if not existing.main_found or CONF_D in {d.rstrip("/") for d in existing.include_dirs}:
        return None
    text = host.read(MAIN_CONF)
    return (
        text.rstrip("\n")
        + f"\n\n# Added by mqtt-tokend's setup_auto_tokens.sh\ninclude_dir {CONF_D}\n"
    )


@dataclass(frozen=True)
class Broker:
    """What the merge reads before it plans: the ACL (None: no ACL file), the users."""

    acl: broker_acl.Acl | None
    acl_text: str  # the ACL file without our blocks ("" without one)
    users: tuple[str, ...]  # their users (password file and ACL), ours excluded
    anonymous: bool


def candidates(broker: Broker) -> list[str]:
    """Accounts that look like Home Assistant's: they may announce HA's birth or read
    discovery, or carry its name."""
    found = []
    for user in broker.users:
        can = broker_acl.allowed
        if (
            can(broker.acl, user, f"{rights.PREFIX}/status", broker_acl.WRITE, rights.CLIENT)
            or can(broker.acl, user, f"{rights.PREFIX}/x/y/z/config", broker_acl.READ, "c")
            or "hass" in user
            or "homeassistant" in user
        ):
            found.append(user)
    return found


def ha_instruction(broker: Broker, ha: str) -> str | None:
    """Why `ha` cannot be Home Assistant's account as it stands (None: it can)."""
    writes = [
        topic
        for topic in rights.HA_READS
        if broker_acl.allowed(broker.acl, ha, topic, broker_acl.WRITE, rights.CLIENT)
    ]
    if not writes or ha not in broker.users:
        return None
    if broker.acl is None:
        where = "the broker has no ACL file, so every account may write every topic"
    else:
        lines = {
            rule.text()
            for topic in writes
            for rule in broker_acl.granting(broker.acl, ha, topic, broker_acl.WRITE)
        }
        where = "its ACL lines " + ", ".join(f"'{line}'" for line in sorted(lines))
    return (
        f"Home Assistant's account '{ha}' may write the agent's topics ({where}). A Mosquitto "
        f"ACL cannot let an account read a topic and forbid it to write there, so the merge "
        f"cannot keep '{ha}' from forging the agent's health, login and discovery. Give "
        f"'{ha}' write access only where Home Assistant writes, for example:\n"
        f"      user {ha}\n      topic read #\n      topic write {rights.PREFIX}/status\n"
        f"      topic write zigbee2mqtt/+/set\n"
        f"  (the command topics of your devices), then run this again with --ha-user {ha}"
    )


def choose_ha(broker: Broker, wanted: str | None, recorded: str | None, ask: object) -> str:
    """Home Assistant's account: --ha-user, else the one an earlier run recorded, else ours
    when the broker has no candidate, else the owner's answer (`ask`, on a terminal)."""
    known = set(broker.users) | {HOMEASSISTANT}
    if wanted is not None:
        if wanted not in known:
            raise CannotMerge(
                f"--ha-user {wanted}: no such user in the broker's password file or ACL "
                f"(users: {', '.join(sorted(broker.users)) or 'none'}); give the user Home "
                f"Assistant logs in with, or --ha-user {HOMEASSISTANT} for a new account"
            )
        return wanted
    if recorded in known:
        return recorded
    found = candidates(broker)
    if not found:
        return HOMEASSISTANT
    if callable(ask):
        answer = str(ask(found)).strip()
        if answer in known:
            return answer
    names = ", ".join(found)
    raise CannotMerge(
        f"which account does Home Assistant log in with? It keeps its rights and gains "
        f"Home Assistant's on the agent's topics. Candidates: {names}. Run this again with "
        f"--ha-user NAME (setup_auto_tokens.sh --ha-user NAME), or --ha-user {HOMEASSISTANT} "
        f"for a new account of that name (Home Assistant must then log in with it)"
    )


def acl_block(deploy: Path, broker: Broker, ha: str, *, everything: bool) -> list[str]:
    """Our block at the end of the ACL: the agent, the player, Home Assistant, and every other
    user closed out of the agent's topics (`everything`: they keep all other topics)."""
    block = [BEGIN, f"{HA_MARK}{ha}"]
    block += ["# Users without a section of their own, and patterns, never reach them:"]
    block += [line.replace("topic ", "pattern ", 1) for line in rights.CLOSED]
    theirs = ha in broker.users
    block += ["", *shipped_sections(deploy, with_ha=not theirs)]
    if theirs:
        block += ["", "# Home Assistant keeps its own rights and gains these:"]
        block += [f"user {ha}", *rights.HA_LINES]
    for user in broker.users:
        if user in {ha, AGENT, PLAYER}:
            continue
        kept = ["topic readwrite #", "topic readwrite $SYS/#"] if everything else []
        block += ["", f"user {user}", *rights.CLOSED, *kept]
    block.append(END)
    return block


def acl_text(deploy: Path, broker: Broker, ha: str, *, new: bool) -> str:
    """The planned ACL: theirs with our blocks, or (`new`) one where everyone who could
    connect keeps every topic but the agent's."""
    top = [BEGIN_ANONYMOUS, *rights.CLOSED]
    if new:
        head = [
            "# Mosquitto ACL written by setup_auto_tokens.sh: the broker had none, so every",
            "# client that could connect before keeps every topic, except the agent's.",
        ]
        rest = ["topic readwrite #", "topic readwrite $SYS/#"] if broker.anonymous else []
        text = "\n".join([*head, *top, *rest, END]) + "\n"
    else:
        text = "\n".join([*top, END]) + "\n\n" + broker.acl_text.strip("\n")
    block = acl_block(deploy, broker, ha, everything=new)
    return text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"


def prove(broker: Broker, planned_text: str, ha: str) -> list[str]:
    """The planned ACL against the guarantee list, and every outcome outside the agent's
    topics against the broker's before; returns the report, raises CannotMerge."""
    after = broker_acl.parse(planned_text)
    roles = rights.Roles(ha=ha, anonymous=broker.anonymous)
    problems = rights.violations(after, broker.users, roles)
    principals: list[str | None] = list(broker.users)
    if broker.acl is not None:  # without an ACL before, a later user gets none (a note says)
        principals.append(rights.NEWCOMER)
    if broker.anonymous:
        principals.append(None)
    problems += rights.changed_outside(broker.acl, after, principals)
    if problems:
        raise CannotMerge("the merged ACL would not hold: " + "; ".join(problems[:5]))
    report = []
    for who in principals:
        if who == rights.NEWCOMER:
            continue
        role = " (Home Assistant)" if who == ha else ""
        name = who or "anonymous clients"
        change = rights.what_changed(broker.acl, after, who)
        report.append(f"{name}{role}: {change}; everything else unchanged")
    if ha not in broker.users:
        report.append(f"{ha} (Home Assistant, new account): the shipped rights")
    return report


def read_broker(host: Host, existing: Existing, passwd: str, acl: str | None) -> Broker:
    text = without_blocks(host.read(acl)) if acl else ""
    try:
        model = broker_acl.parse(text) if acl else None
    except ValueError as error:
        raise CannotMerge(f"cannot read the ACL file {acl}: {error}") from error
    users = passwd_users(host.read(passwd)) + list(model.users if model else [])
    # Our users are those this installer added: all of them in a password file of ours.
    mine = set(OUR_USERS) if passwd == OUR_PASSWD else set(host.read(ADDED_USERS).split())
    theirs = tuple(u for u in dict.fromkeys(users) if u not in mine)
    anonymous = bool(existing.anonymous) or not existing.listeners
    return Broker(model, text, theirs, anonymous)


def conf_text(existing: Existing, *, local: bool, passwd: str, acl: str | None) -> str:
    """Our conf.d file for a merge: a listener and files only where the broker has none."""
    lines = [
        "# mqtt-tokend, merged into the Mosquitto setup found by setup_auto_tokens.sh.",
    ]
    if local:
        lines += [
            "# Mosquitto's stock (local-only) setup: anonymous clients on loopback keep what",
            f"# they had, except the agent's topics; {LOCK_DOWN_OPTION} refuses them.",
            f"listener {PORT} 127.0.0.1",
            "allow_anonymous true",
        ]
    elif not any(port == PORT for port, _bind in existing.listeners):
        lines += [
            "# Loopback only: the player, Home Assistant and the agent run on this Pi.",
            f"listener {PORT} 127.0.0.1",
        ]
    if passwd == OUR_PASSWD:
        lines.append(f"password_file {OUR_PASSWD}")
    if acl is None:
        lines.append(f"acl_file {OUR_ACL}")
    lines += [
        "# Small packets on loopback otherwise wait ~40 ms for the peer's delayed ACK.",
        "set_tcp_nodelay true",
    ]
    return "\n".join(lines) + "\n"


def plan(
    host: Host,
    deploy: Path,
    existing: Existing,
    *,
    lock_down: bool = False,
    ha_user: str | None = None,
    ask: object = None,
) -> Plan:
    reason = existing.unreadable()
    if reason:
        raise CannotMerge(reason)
    main = with_include(host, existing)
    if existing.untouched:
        if not lock_down and host.path(OUR_CONF).is_file():
            lock_down = "allow_anonymous false" in host.read(OUR_CONF).splitlines()
        if lock_down or not existing.main_found:
            conf = (deploy / "mosquitto" / "mosquitto.conf").read_text()
            text = (deploy / "mosquitto" / "acl").read_text()
            notes = [LOCKED_NOTE] if existing.main_found else []
            return Plan("locked-down", conf, OUR_PASSWD, OUR_ACL, text, HOMEASSISTANT, notes)
    elif lock_down:
        raise RuntimeError(
            "--lock-down-broker replaces Mosquitto's stock configuration only, and this one "
            "has its own listener, users, ACL or allow_anonymous: run without it to merge"
        )
    local = existing.untouched
    passwd = (existing.values("password_file") or [OUR_PASSWD])[0]
    acl = (existing.values("acl_file") or [None])[0]
    broker = read_broker(host, existing, passwd, acl)
    ha = choose_ha(broker, ha_user, recorded_ha(host.read(acl or OUR_ACL)), ask)
    problem = ha_instruction(broker, ha)
    if problem:
        raise CannotMerge(problem)
    text = acl_text(deploy, broker, ha, new=acl is None)
    report = prove(broker, text, ha)
    conf = conf_text(existing, local=local, passwd=passwd, acl=acl)
    notes = [LOCAL_NOTE] if local else []
    if not local and not existing.values("max_packet_size"):
        notes.append(SHARED_NOTE)
    if acl is None:
        notes.append(f"A user added to {passwd} later gets no topics until {OUR_ACL} names it.")
    if ha not in broker.users:
        notes.append(ANONYMOUS_HA if broker.anonymous else NEW_HA)
    mode = "local" if local else "merge"
    return Plan(mode, conf, passwd, acl or OUR_ACL, text, ha, notes, report, main)


def instructions(error: CannotMerge, deploy: Path) -> list[str]:
    """The exact lines a human adds when the setup cannot be merged automatically."""
    if "decides who may do what" in str(error):
        return [
            f"Cannot merge into this Mosquitto setup: {error}. Nothing was changed.",
            "Create the accounts mqtt-tokend, lofi-player and Home Assistant's in that plugin",
            "(dynamic security: mosquitto_ctrl dynsec createClient, createRole, addRoleACL,",
            "addClientRole), give them the rights of the sections below, and deny",
            f"{' and '.join(rights.AGENT_FILTERS)} to every other client:",
            *("      " + line for line in shipped_sections(deploy, with_ha=True)),
        ]
    return [
        f"Cannot merge into this Mosquitto setup: {error}. Nothing was changed.",
        "To set it up by hand, add these, then restart Mosquitto:",
        f"  in the listener that serves 127.0.0.1:{PORT} (or globally), if missing:",
        f"      listener {PORT} 127.0.0.1",
        "  the password file that listener uses gets the three users:",
        "      sh /path/to/mqtt-tokend/deploy/mosquitto/make_passwords.sh --file PASSWORD_FILE",
        "  the ACL file that listener uses gets these lines at its very top (anonymous",
        "  clients), the same lines in the section of every other user, and the rest at its end:",
        *("      " + line for line in rights.CLOSED),
        *("      " + line.replace("topic ", "pattern ", 1) for line in rights.CLOSED),
        *("      " + line for line in shipped_sections(deploy, with_ha=True)),
    ]
