"""docs/consumers.md against what it describes: its links, the examples' line counts and the
reasons a refresh reply can give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mqtt_tokend.contract.wire import NotRefreshed

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "consumers.md"
EXAMPLES = ("consumer.py", "consumer.sh", "consumer.mjs")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_every_relative_link_of_the_guide_exists() -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", guide())
    assert links
    assert [link for link in links if not (GUIDE.parent / link).exists()] == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_guide_gives_each_example_its_real_line_count(name: str) -> None:
    lines = len((DOCS / "examples" / name).read_text(encoding="utf-8").splitlines())
    row = next(line for line in guide().splitlines() if line.startswith(f"| [`examples/{name}`]"))
    assert row.rstrip(" |").endswith(f"| {lines}"), row


def test_the_node_figure_is_the_files_line_counts() -> None:
    text = (DOCS / "examples" / "consumer.mjs").read_text(encoding="utf-8").splitlines()
    code = [line for line in text if not re.fullmatch(r"\s*(//.*)?", line)]
    assert f"| {len(text)}; {len(code)} without comments and blank lines |" in guide()


def test_the_guide_explains_every_reason_a_refresh_reply_can_give() -> None:
    text = guide()
    table = text[text.index("| `reason` | what happened | what to do |") :].split("\n\n")[0]
    named = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(named) == sorted(["reason", *map(str, NotRefreshed)])
