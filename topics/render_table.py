"""Print the README's topic table (markdown) from topics/asyncapi.yaml.

Usage: python topics/render_table.py [path/to/asyncapi.yaml]
A unit test checks that README.md holds exactly this output under `## Topics`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

DOCUMENT = Path(__file__).resolve().parent / "asyncapi.yaml"
HEADER = ("topic", "from", "retained", "payload")
SENDERS = {"send": "agent", "receive": "anyone allowed"}


def load(path: Path = DOCUMENT) -> dict[str, Any]:
    """The AsyncAPI document as plain data."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def rows(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One row per channel, in the document's order."""
    operations: dict[str, dict[str, Any]] = {}
    for operation in document["operations"].values():
        channel_id = operation["channel"]["$ref"].removeprefix("#/channels/")
        operations.setdefault(channel_id, operation)
    table = []
    for channel_id, channel in document["channels"].items():
        operation = operations[channel_id]
        retain = operation.get("bindings", {}).get("mqtt", {}).get("retain", False)
        topic = channel["address"].replace("{base}", "<base>")
        summary = " ".join(channel["summary"].split())
        table.append(
            (f"`{topic}`", SENDERS[operation["action"]], "yes" if retain else "no", summary)
        )
    return table


def render(document: dict[str, Any]) -> str:
    """The markdown table, without a trailing newline."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in rows(document)),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the table of the document named in `argv` (default: the one beside this file)."""
    path = Path(argv[1]) if len(argv) > 1 else DOCUMENT
    print(render(load(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
