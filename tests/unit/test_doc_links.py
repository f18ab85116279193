"""Every relative link in the README, docs/ and the deploy READMEs leads somewhere: the file
exists, and a `#section` names a heading of that file (as GitHub makes its anchors). The
documentation says each fact once and links to it, so a broken link loses the fact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [
        REPO / "README.md",
        REPO / "deploy" / "README.md",
        REPO / "deploy" / "homeassistant" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (where `# comment` is not a heading)."""
    return "\n".join(re.split(r"^```.*$", text, flags=re.MULTILINE)[::2])


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", prose(page.read_text(encoding="utf-8")), re.M)
    return {anchor(heading) for heading in headings}


def links(page: Path) -> list[str]:
    found = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [link for link in found if not re.match(r"[a-z]+:", link)]


def test_the_anchor_rule_matches_githubs() -> None:
    assert anchor("Home Assistant's MQTT user: --ha-user") == "home-assistants-mqtt-user---ha-user"
    assert anchor("Calling the Web API: SpotifyClient and spotipy") == (
        "calling-the-web-api-spotifyclient-and-spotipy"
    )
    assert anchor("Client ids: no session takes another's") == (
        "client-ids-no-session-takes-anothers"
    )


def test_the_pages_link_to_each_other() -> None:
    assert all(links(page) for page in PAGES if page.parent != REPO / "deploy" / "homeassistant")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for link in links(page):
        path, _, section = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif section and (target.suffix != ".md" or section not in anchors(target)):
            broken.append(f"{link}: no heading #{section} in {target.relative_to(REPO)}")
    assert broken == []
