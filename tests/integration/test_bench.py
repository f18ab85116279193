"""The bench harness works: `bench/bench.py --quick` runs in seconds and prints every figure.

Only that it runs and measures: the values on a busy CI machine mean little (README's figures
come from the full run, with the command beside them).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIGURES = [
    "cold start to first retained token",
    "request/refresh to new retained token, p50",
    "request/refresh to new retained token, p99",
    "fan-out: forced refresh to new token at all 10 subscribers",
    "Spotify calls for a burst of 100 refresh requests",
    "get-token wall time",
    "get-token import time",
    "get-token peak resident memory",
    "agent import time",
    "agent resident memory at first token",
    "agent resident memory after 1 s idle",
    "agent CPU while idle",
]
MEASURED = re.compile(r"^\| (?P<figure>[^|]+?) +\| (?P<measured>[^|]*?) +\|", re.MULTILINE)


def test_the_quick_bench_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench.py", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    rows = {m["figure"]: m["measured"] for m in MEASURED.finditer(result.stdout)}
    for figure in FIGURES:
        measured = next((v for k, v in rows.items() if k.startswith(figure)), None)
        assert measured is not None, f"no row {figure!r} in:\n{result.stdout}"
        assert re.search(r"\d", measured), f"{figure}: {measured!r} is no figure"
    print(result.stdout)
