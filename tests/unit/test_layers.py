"""The layer contract holds on the package, and its checker catches what it should on small fake
packages (the rules themselves: layer_rules.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.layer_rules import (
    CHECKS,
    MAX_LINES,
    PACKAGE_DIR,
    dev_violations,
    floor_violations,
    import_cycles,
    module_names,
    outside_library_violations,
    oversized_modules,
    purity_violations,
    read_imports,
    undeclared_floors,
)

# -- the contract, on the real package ------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
def test_the_package_keeps_the_layer_contract(check: object) -> None:
    """Each rule holds over mqtt_tokend/; a failure lists every offending import with its line."""
    assert callable(check)
    problems = check(PACKAGE_DIR, "mqtt_tokend")
    assert not problems, "\n" + "\n".join(problems)


def test_the_reader_sees_the_real_package() -> None:
    """The checks are not vacuous: the reader finds the package's modules and known imports."""
    imports = read_imports(PACKAGE_DIR, "mqtt_tokend")
    seen = {(imp.source, imp.target) for imp in imports}
    assert ("mqtt_tokend.adapters.mqtt", "paho") in seen
    assert ("mqtt_tokend.adapters.spotify", "requests") in seen
    assert ("mqtt_tokend.webapi.transport", "requests") in seen
    assert ("mqtt_tokend.daemon.wiring", "mqtt_tokend.adapters.crypto") in seen
    assert len(module_names(PACKAGE_DIR, "mqtt_tokend")) > 30


# -- the checker itself, on a small fake package --------------------------------------------------


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "fakepkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checker_reports_a_cycle_behind_type_checking_and_paho_in_contract(
    tmp_path: Path,
) -> None:
    """A cycle hidden under TYPE_CHECKING, paho in contract and a lazy upward import all show."""
    root = _fake_package(
        tmp_path,
        {
            "contract/topics.py": "import paho.mqtt.client as paho\n",
            "daemon/agent.py": "from fakepkg.daemon import answers\n",
            "daemon/answers.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from fakepkg.daemon.agent import Agent\n"
            ),
            "core/timing.py": "def later():\n    from ..adapters import spotify\n",
            "adapters/spotify.py": "import requests\n",
            "adapters/mqtt.py": "import paho\n",
        },
    )

    cycles = import_cycles(root, "fakepkg")
    assert len(cycles) == 1
    assert "fakepkg.daemon.agent -> fakepkg.daemon.answers -> fakepkg.daemon.agent" in cycles[0]
    assert (
        "fakepkg/daemon/answers.py:3 imports fakepkg.daemon.agent (under TYPE_CHECKING)"
        in (cycles[0])
    )

    assert outside_library_violations(root, "fakepkg") == [
        "fakepkg/contract/topics.py:1 imports paho: only fakepkg.adapters.mqtt may import paho"
    ]
    assert floor_violations(root, "fakepkg") == [
        "fakepkg/core/timing.py:2 imports fakepkg.adapters.spotify (in a function): "
        "core may import only config, contract, core, errors"
    ]
    # The lazy import in core/timing.py runs only when called: the floors check reports it.
    assert purity_violations(root, "fakepkg") == ["importing fakepkg.contract.topics loads paho"]


def test_the_checker_passes_a_clean_package_and_flags_eager_dev_and_size(tmp_path: Path) -> None:
    """A clean layout passes; dev imported at the top of cli, or a long module, does not."""
    root = _fake_package(
        tmp_path,
        {
            "adapters/mqtt.py": "import paho\nfrom fakepkg.contract import topics\n",
            "adapters/spotify.py": "import requests\n",
            "contract/topics.py": "from fakepkg import errors\n",
            "errors.py": "",
            "cli/main.py": "def demo():\n    from fakepkg.dev import demo\n",
            "dev/demo.py": "from fakepkg.adapters import mqtt\n",
        },
    )
    for check in CHECKS.values():
        assert check(root, "fakepkg") == []

    (root / "cli/main.py").write_text("from fakepkg.dev import demo\n" + "\n" * MAX_LINES)
    assert dev_violations(root, "fakepkg") == [
        "fakepkg/cli/main.py:1 imports fakepkg.dev.demo: cli must import dev inside the command"
    ]
    assert oversized_modules(root, "fakepkg") == [
        f"fakepkg/cli/main.py has {MAX_LINES + 1} lines (at most {MAX_LINES})"
    ]


def test_the_upper_floors_have_their_own_lists(tmp_path: Path) -> None:
    """daemon, consumer and dev each stay off the floors beside them; a new floor must be listed."""
    root = _fake_package(
        tmp_path,
        {
            "daemon/loop.py": "from fakepkg.consumer import fetch\n",
            "consumer/fetch.py": "from fakepkg.daemon import loop\n",
            "dev/demo.py": "def run():\n    from fakepkg.daemon import loop\n",
            "gadgets/thing.py": "",
        },
    )
    assert floor_violations(root, "fakepkg") == [
        "fakepkg/consumer/fetch.py:1 imports fakepkg.daemon.loop: consumer may import only "
        "adapters, config, consumer, contract, core, errors",
        "fakepkg/daemon/loop.py:1 imports fakepkg.consumer.fetch: daemon may import only "
        "adapters, config, contract, core, daemon, errors",
        "fakepkg/dev/demo.py:2 imports fakepkg.daemon.loop (in a function): dev may import only "
        "adapters, config, consumer, contract, core, dev, errors",
    ]
    assert undeclared_floors(root, "fakepkg") == [
        "fakepkg/gadgets/__init__.py is on floor 'gadgets', which FLOOR_MAY_IMPORT does not list",
        "fakepkg/gadgets/thing.py is on floor 'gadgets', which FLOOR_MAY_IMPORT does not list",
    ]
