"""The effective-rights model of a Mosquitto ACL (deploy/mosquitto/broker_acl.py), case by
case; test_broker_matrix.py checks the same model's merges against a real Mosquitto."""

from __future__ import annotations

import sys

import pytest

from tests.deploy.conftest import DEPLOY

sys.path.insert(0, str(DEPLOY / "mosquitto"))
from broker_acl import READ, WRITE, allowed, matches, parse  # isort: skip

ACL = """\
topic read public/#
topic deny public/secret

pattern readwrite devices/%u/#
pattern read clients/%c
pattern deny devices/+/locked

user alice
topic readwrite #
topic deny private/#

user bob
topic read sensors/+
"""

CASES = [
    # (user, client id, topic, access, allowed, why)
    (None, "c1", "public/news", READ, True, "anonymous line"),
    (None, "c1", "public/news", WRITE, False, "read only"),
    (None, "c1", "public/secret", READ, False, "deny wins"),
    (None, "c1", "devices/x/state", READ, False, "%u patterns skip anonymous clients"),
    (None, "c1", "clients/c1", READ, True, "%c pattern"),
    ("alice", "a", "anything/at/all", WRITE, True, "readwrite #"),
    ("alice", "a", "private/diary", READ, False, "a deny beats the user's own #"),
    ("alice", "a", "$SYS/broker/uptime", READ, False, "# never matches $ topics"),
    ("bob", "b", "sensors/temp", READ, True, "+ matches one level"),
    ("bob", "b", "sensors/temp/raw", READ, False, "+ matches one level only"),
    ("bob", "b", "devices/bob/state", WRITE, True, "patterns after the user's own list"),
    ("bob", "b", "devices/bob/locked", WRITE, False, "a deny pattern beats an allow pattern"),
    ("bob", "b", "devices/alice/state", READ, False, "%u is the user's own name"),
    ("carol", "c", "devices/carol/x", READ, True, "no section: patterns only"),
    ("carol", "c", "public/news", READ, False, "no section: anonymous lines do not apply"),
    ("bob", "b+", "devices/bob/state", READ, False, "a client id with + gets no patterns"),
]


@pytest.mark.parametrize(
    ("user", "client", "topic", "access", "expected"),
    [pytest.param(*case[:5], id=case[5]) for case in CASES],
)
def test_effective_rights(
    user: str | None, client: str, topic: str, access: int, expected: bool
) -> None:
    assert allowed(parse(ACL), user, topic, access, client) is expected


def test_no_acl_file_allows_everything_and_no_patterns_means_unlisted_users_get_nothing() -> None:
    assert allowed(None, "anyone", "any/topic", WRITE, "c")
    assert not allowed(parse("user alice\ntopic readwrite #\n"), "bob", "x", READ, "c")


@pytest.mark.parametrize(
    ("sub", "topic", "expected"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a", False),
        ("+/+", "a/b", True),
        ("#", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_matches(sub: str, topic: str, expected: bool) -> None:
    assert matches(sub, topic) is expected


def test_an_unreadable_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse("user a\nsubscribe everything\n")
