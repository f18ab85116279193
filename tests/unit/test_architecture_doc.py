"""docs/architecture.md's picture of the floors is drawn from the package's real imports: every
arrow is an import that exists, and every import between floors has its arrow. After a
deliberate change to the layers, redraw it with

    MQTT_TOKEND_UPDATE_ARCHITECTURE=1 .venv/bin/python -m pytest \
        tests/unit/test_architecture_doc.py
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from tests.unit.layer_rules import PACKAGE_DIR, floor, module_names, read_imports

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BEGIN, END = "<!-- floors:begin -->", "<!-- floors:end -->"
PACKAGE = "mqtt_tokend"

# Top to bottom. A floor missing here is still drawn, under its bare name.
FLOORS = {
    "cli": "cli<br>the mqtt-tokend command",
    "dev": "dev<br>demo, Spotify emulator, private Mosquitto",
    "daemon": "daemon<br>the agent: loop, session keeping, outputs",
    "webapi": "webapi<br>SpotifyClient, TokendAuthManager",
    "consumer": "consumer<br>TokenConsumer",
    "adapters": "adapters<br>one outside system each",
    "core": "core<br>pure rules and timing",
    "contract": "contract<br>pure words and wire formats",
}
# Imported by nearly every floor: named under the picture instead of drawn.
BASEMENT = ("errors", "config")
NOT_FLOORS = ("root", "__main__")  # the package root holds the version; __main__ runs cli


def floor_edges() -> dict[tuple[str, str], bool]:
    """(importer, imported) between floors -> whether one import of it is eager (at the top)."""
    edges: dict[tuple[str, str], bool] = defaultdict(bool)
    for imp in read_imports(PACKAGE_DIR, PACKAGE):
        source, target = floor(PACKAGE, imp.source), floor(PACKAGE, imp.target)
        if not imp.internal or source == target or {source, target} & set(NOT_FLOORS):
            continue
        edges[(source, target)] |= not (imp.lazy or imp.type_checking)
    return dict(edges)


def render() -> str:
    edges = floor_edges()
    names = sorted({name for edge in edges for name in edge} - set(BASEMENT))
    order = [name for name in FLOORS if name in names] + [n for n in names if n not in FLOORS]
    lines = ["```mermaid", "flowchart TD"]
    lines += [f'    {name}["{FLOORS.get(name, name)}"]' for name in order]
    for source in order:
        for target in order:
            if (source, target) in edges:
                arrow = "-->" if edges[(source, target)] else "-.->"
                lines.append(f"    {source} {arrow} {target}")
    lines.append("```")
    for low in BASEMENT:
        users = sorted(source for source, target in edges if target == low)
        lines.append("")
        lines.append(f"Not drawn: `{low}` is imported by {', '.join(f'`{u}`' for u in users)}.")
    return "\n".join(lines)


def test_the_picture_of_the_floors_is_the_imports() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    drawn = render()
    if os.environ.get("MQTT_TOKEND_UPDATE_ARCHITECTURE"):
        DOC.write_text(f"{text[:start]}\n{drawn}\n{text[end:]}", encoding="utf-8")
        return
    assert text[start:end].strip() == drawn, (
        "docs/architecture.md's floors drifted from the imports; redraw with "
        "MQTT_TOKEND_UPDATE_ARCHITECTURE=1"
    )


def test_every_described_floor_exists() -> None:
    floors = {floor(PACKAGE, name) for name in module_names(PACKAGE_DIR, PACKAGE)}
    assert set(FLOORS) | set(BASEMENT) <= floors, "a floor described here is gone: edit FLOORS"
