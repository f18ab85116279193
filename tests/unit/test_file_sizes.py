"""Every Python file in the repository, not only the package, keeps to MAX_LINES lines.

The package is also held to it by the layer test; this covers the tests, bench/, deploy/ and
the rest. A file may be exempt only while another change splits it: EXEMPT says which and why,
and an exemption that is no longer needed fails, so the list only shrinks.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.layer_rules import MAX_LINES

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {"build", "dist", "node_modules", "__pycache__"}

# A file over MAX_LINES while another change splits it, with why (path: reason). Empty: every
# file keeps the rule.
EXEMPT: dict[str, str] = {}
# deploy/ is covered once deploy/mosquitto/setup_broker.py (691 lines) is split: switch on then.
COVERS_DEPLOY = True


def python_files(root: Path, *, deploy: bool) -> list[Path]:
    """The repository's own Python files (no virtual environments, caches or build output)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in parts[:-1]):
            continue
        if any(part.endswith(".egg-info") for part in parts) or (
            parts[0] == "deploy" and not deploy
        ):
            continue
        found.append(path)
    return found


def size_problems(root: Path, *, deploy: bool, exempt: dict[str, str]) -> list[str]:
    """Files over MAX_LINES that are not exempt, and exemptions no longer needed."""
    problems = []
    sizes = {
        path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in python_files(root, deploy=deploy)
    }
    for name, lines in sizes.items():
        if lines > MAX_LINES and name not in exempt:
            problems.append(f"{name} has {lines} lines (at most {MAX_LINES}): split it")
    for name in exempt:
        if sizes.get(name, 0) <= MAX_LINES:
            problems.append(
                f"{name} is exempt but has at most {MAX_LINES} lines: drop it from EXEMPT"
            )
    return problems


def test_every_python_file_in_the_repository_keeps_the_size_rule() -> None:
    problems = size_problems(REPO, deploy=COVERS_DEPLOY, exempt=EXEMPT)
    assert not problems, "\n" + "\n".join(problems)
    assert len(python_files(REPO, deploy=COVERS_DEPLOY)) > 100  # the walk saw the repository


def test_the_rule_flags_a_long_file_and_a_stale_exemption(tmp_path: Path) -> None:
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "big.py").write_text("\n" * (MAX_LINES + 5))
    for name, lines in {
        "bench/long.py": MAX_LINES + 1,
        "tests/short.py": 3,
        "deploy/d.py": 999,
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n" * lines)
    problems = size_problems(tmp_path, deploy=False, exempt={"tests/short.py": "being split"})
    assert problems == [
        f"bench/long.py has {MAX_LINES + 1} lines (at most {MAX_LINES}): split it",
        f"tests/short.py is exempt but has at most {MAX_LINES} lines: drop it from EXEMPT",
    ]
    assert "deploy/d.py has 999 lines" in size_problems(tmp_path, deploy=True, exempt={})[1]
