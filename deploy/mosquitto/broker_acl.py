"""Who may read and write what on a Mosquitto 2 broker: an ACL file parsed into rules, and
each principal's effective right on a topic computed as Mosquitto's default ACL check does.

The semantics (mosquitto.conf(5), acl_file; checked against Mosquitto 2.0):
  * `topic` lines before the first `user` line are the anonymous clients' list; after a
    `user NAME` line they belong to NAME (repeated sections of one user are one list);
  * `pattern` lines apply to every client; `%u` becomes the user name (a pattern with `%u` is
    skipped for anonymous clients) and `%c` the client id;
  * a client's own list is checked first: any matching `deny` refuses (read and write alike);
    else the first matching line with the access allows; else the patterns, in the same way
    (a `deny` pattern first); else refused. A user or client id containing + or # gets
    nothing from the patterns;
  * a user without a list of its own gets the patterns only (nothing, without patterns);
  * no ACL file at all: everyone who connects may do everything;
  * a line's filter never matches a topic beginning with `$` unless it begins with `$` too.
Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field

READ, WRITE = 1, 2
ACCESS = {"read": READ, "write": WRITE, "readwrite": READ | WRITE, "deny": 0}
ANONYMOUS = None  # the principal of clients without a user name


@dataclass(frozen=True)
class Rule:
    access: int  # READ, WRITE, both, or 0 for deny
    filter: str
    line: int  # 1-based line number in the ACL text

    def text(self, kind: str = "topic") -> str:
        word = {READ: "read", WRITE: "write", READ | WRITE: "readwrite", 0: "deny"}[self.access]
        return f"{kind} {word} {self.filter}"


@dataclass
class Acl:
    """A parsed ACL file. `None` anywhere an Acl is expected means: the broker has none."""

    anonymous: list[Rule] = field(default_factory=list)
    users: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[Rule] = field(default_factory=list)


def parse(text: str) -> Acl:
    """The rules of an ACL file, as Mosquitto reads it (invalid lines raise ValueError)."""
    acl = Acl()
    user: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "user":
            if not rest:
                raise ValueError(f"line {number}: user without a name")
            user = rest
            acl.users.setdefault(user, [])
        elif word in {"topic", "pattern"}:
            access_word, _, topic = rest.partition(" ")
            topic = topic.strip()
            if not topic:  # `topic FILTER`: read and write
                access_word, topic = "readwrite", access_word
            if access_word not in ACCESS or not topic:
                raise ValueError(f"line {number}: cannot read {line!r}")
            rule = Rule(ACCESS[access_word], topic, number)
            if word == "pattern":
                acl.patterns.append(rule)
            elif user is None:
                acl.anonymous.append(rule)
            else:
                acl.users[user].append(rule)
        else:
            raise ValueError(f"line {number}: cannot read {line!r}")
    return acl


def matches(sub: str, topic: str) -> bool:
    """Whether the filter `sub` matches the topic name `topic` (MQTT rules)."""
    if topic.startswith("$") != sub.startswith("$"):
        return False
    want, have = sub.split("/"), topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return index == len(want) - 1
        if index >= len(have):
            return False
        if level not in {"+", have[index]}:
            return False
    return len(want) == len(have) or (len(have) == len(want) - 1 and want[-1] == "#")


def _decide(rules: list[Rule], topic: str, access: int) -> bool | None:
    """The list's verdict: True allowed, False refused, None no line decides."""
    if any(rule.access == 0 and matches(rule.filter, topic) for rule in rules):
        return False
    if any(rule.access & access and matches(rule.filter, topic) for rule in rules):
        return True
    return None


def allowed(acl: Acl | None, user: str | None, topic: str, access: int, client: str) -> bool:
    """Whether `user` (None: anonymous) with client id `client` may `access` the topic."""
    if acl is None:
        return True
    own = acl.anonymous if user is None else acl.users.get(user)
    if own is None and not acl.patterns:
        return False
    verdict = _decide(own or [], topic, access)
    if verdict is not None:
        return verdict
    if not acl.patterns:
        return False
    if any(c in (user or "") + client for c in "+#"):
        return False
    patterns = []
    for rule in acl.patterns:
        if "%u" in rule.filter and user is None:
            continue
        expanded = rule.filter.replace("%c", client).replace("%u", user or "")
        patterns.append(Rule(rule.access, expanded, rule.line))
    return bool(_decide(patterns, topic, access))


def granting(acl: Acl, user: str, topic: str, access: int) -> list[Rule]:
    """The lines of the user's own list that give it `access` to the topic."""
    return [
        rule
        for rule in acl.users.get(user, [])
        if rule.access & access and matches(rule.filter, topic)
    ]


def samples(acl: Acl | None) -> set[str]:
    """Topics that exercise every line of the ACL: each filter with + and # filled in."""
    found: set[str] = set()
    if acl is None:
        return found
    rules = acl.anonymous + acl.patterns + [r for rs in acl.users.values() for r in rs]
    for rule in rules:
        levels = rule.filter.replace("%u", "someone").replace("%c", "client").split("/")
        concrete = ["x" if level in {"+", "#"} else level for level in levels]
        found.add("/".join(concrete))
        if levels[-1] == "#":
            found.add("/".join([*concrete[:-1], "deeper", "x"]))
    return found
