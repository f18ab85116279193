"""The agent's topics and who may do what on them once mqtt-tokend is merged into a broker:
the guarantee list, checked against the effective-rights model (broker_acl) of a planned ACL
before anything is written. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker_acl import READ, WRITE, Acl, allowed, matches, samples
from broker_conf import AGENT, PLAYER

BASE = "lofi/spotify"
PREFIX = "homeassistant"  # Home Assistant's discovery prefix
NODE = BASE.replace("/", "_")  # the agent's discovery node id
AGENT_FILTERS = (f"{BASE}/#", f"{PREFIX}/+/{NODE}/#")
TOKENS = (f"{BASE}/token", f"{BASE}/token/app")
ONLY_HA = (f"{BASE}/login", f"{BASE}/response/auth")  # and the agent
DISCOVERY = (f"{PREFIX}/sensor/{NODE}/state/config", f"{PREFIX}/binary_sensor/{NODE}/agent/config")
PUBLISHED = (
    *TOKENS,
    f"{BASE}/health",
    f"{BASE}/availability",
    f"{BASE}/devices",
    f"{BASE}/alert",
    f"{BASE}/login",
    f"{BASE}/response/refresh",
    f"{BASE}/response/auth",
    f"{BASE}/response/check",
    f"{BASE}/response/status",
    *DISCOVERY,
)
REQUESTS = tuple(f"{BASE}/request/{verb}" for verb in ("refresh", "check", "status", "auth"))
HA_READS = tuple(t for t in PUBLISHED if t not in TOKENS)
# What an existing account that Home Assistant uses gains on the agent's topics (its other
# rights stay as they were); an account of ours gets the shipped ACL's section instead.
HA_LINES = (
    *(f"topic deny {topic}" for topic in TOKENS),
    f"topic deny {BASE}/token/#",
    f"topic read {BASE}/health",
    f"topic read {BASE}/availability",
    f"topic read {BASE}/devices",
    f"topic read {BASE}/alert",
    f"topic read {BASE}/login",
    f"topic read {BASE}/response/#",
    f"topic write {BASE}/request/#",
    f"topic read {PREFIX}/+/{NODE}/#",
)
CLOSED = tuple(f"topic deny {f}" for f in AGENT_FILTERS)
# Topics outside the agent's whose outcome must not change, besides those the ACLs name.
OUTSIDE = (
    "zigbee2mqtt/bridge/state",
    f"{PREFIX}/status",
    f"{PREFIX}/light/kitchen/config",
    f"{PREFIX}/sensor/other_node/x/config",
    "random/x",
    "lofi",
    "lofi/other",
    "lofi/spotifyx/token",
    "$SYS/broker/uptime",
)
CLIENT = "some-client"  # a client id for patterns with %c
NEWCOMER = "someone-added-later"  # stands for a user added to the password file later


def is_agent_topic(topic: str) -> bool:
    return any(matches(f, topic) for f in AGENT_FILTERS)


@dataclass(frozen=True)
class Roles:
    """Who is who on the merged broker."""

    ha: str  # Home Assistant's account
    players: tuple[str, ...] = (PLAYER,)
    anonymous: bool = False  # whether anonymous clients can connect


def violations(acl: Acl | None, users: Iterable[str], roles: Roles) -> list[str]:
    """Every way the ACL breaks the guarantee list, in words (empty: it holds)."""
    found = []
    principals: list[str | None] = [*dict.fromkeys([*users, NEWCOMER, AGENT, roles.ha])]
    principals += list(roles.players)
    if roles.anonymous:
        principals.append(None)

    def can(who: str | None, topic: str, access: int) -> bool:
        return allowed(acl, who, topic, access, CLIENT)

    for who in dict.fromkeys(principals):
        name = who or "anonymous clients"
        for topic in PUBLISHED:
            if who != AGENT and can(who, topic, WRITE):
                found.append(f"{name} may write {topic}")
        for topic in ONLY_HA:
            if who not in {AGENT, roles.ha} and can(who, topic, READ):
                found.append(f"{name} may read {topic}")
        for topic in TOKENS:
            if who not in {AGENT, *roles.players} and can(who, topic, READ):
                found.append(f"{name} may read {topic}")
    wanted = [(AGENT, t, WRITE) for t in PUBLISHED] + [(AGENT, t, READ) for t in REQUESTS]
    wanted += [(roles.ha, t, READ) for t in HA_READS] + [(roles.ha, t, WRITE) for t in REQUESTS]
    for player in roles.players:
        wanted += [(player, t, READ) for t in (*TOKENS, f"{BASE}/health")]
        wanted += [(player, f"{BASE}/request/refresh", WRITE)]
    for who, topic, access in wanted:
        if not can(who, topic, access):
            verb = "read" if access == READ else "write"
            found.append(f"{who} may not {verb} {topic}")
    return found


def outside_topics(before: Acl | None, after: Acl | None, users: Iterable[str]) -> list[str]:
    """The sample of topics outside the agent's on which no outcome may change."""
    topics = set(OUTSIDE) | samples(before) | samples(after)
    topics |= {f"{user}/x" for user in users}
    return sorted(t for t in topics if not is_agent_topic(t))


def changed_outside(
    before: Acl | None, after: Acl | None, principals: Iterable[str | None]
) -> list[str]:
    """Each (principal, topic, access) whose outcome the merge would change outside the
    agent's topics (empty: nothing changes)."""
    listed = list(principals)
    found = []
    for topic in outside_topics(before, after, [p for p in listed if p]):
        for who in listed:
            for access, verb in ((READ, "read"), (WRITE, "write")):
                old = allowed(before, who, topic, access, CLIENT)
                if old != allowed(after, who, topic, access, CLIENT):
                    name = who or "anonymous clients"
                    found.append(f"{name} {'no longer' if old else 'now'} may {verb} {topic}")
    return found


def what_changed(before: Acl | None, after: Acl | None, who: str | None) -> str:
    """One line for the installer's report: what `who` gained and lost on the agent's topics."""
    parts = []
    for access, verb in ((READ, "read"), (WRITE, "write")):
        topics = (*PUBLISHED, *REQUESTS)
        old = {t for t in topics if allowed(before, who, t, access, CLIENT)}
        new = {t for t in topics if allowed(after, who, t, access, CLIENT)}
        if new - old:
            parts.append(f"may now {verb} {_short(new - old)}")
        if old - new:
            parts.append(f"may no longer {verb} {_short(old - new)}")
    return "; ".join(parts) or "no change on the agent's topics"


def _short(topics: set[str]) -> str:
    if topics == {*PUBLISHED, *REQUESTS}:
        return "any of the agent's topics"
    names = sorted(t.removeprefix(f"{BASE}/") if t.startswith(BASE) else t for t in topics)
    if all(not t.startswith(PREFIX) for t in names) and len(names) > 6:
        return f"{len(names)} of the agent's topics ({', '.join(names[:4])}, ...)"
    return ", ".join(names)
