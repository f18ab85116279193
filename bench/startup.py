"""What starting costs: import time and memory of `get-token` and of the agent.

Import time is the sum of the `self` column of `python -X importtime` over every module the
process imports (the interpreter's own start-up not included), read from real runs of the
command against a running agent, so it measures what `get-token` and `run` actually load
whatever the package's module names are. Memory is the peak resident set of a `get-token`
process (from `wait4`) and the agent's resident set once it has published its first token.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from harness import CLI, Rig, Watch, rss_mib

Row = tuple[str, str, str]
NO_TARGET = "—"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Imports:
    """What one process imported: the summed self time and the modules."""

    seconds: float
    modules: frozenset[str]


def imports_in(stderr: str) -> Imports:
    """The `-X importtime` lines in a process's standard error, summed."""
    found = IMPORT_LINE.findall(stderr)
    if not found:
        raise SystemExit("no -X importtime lines: was the process started with -X importtime?")
    return Imports(
        seconds=sum(int(us) for us, _ in found) / 1e6, modules=frozenset(m for _, m in found)
    )


@dataclass(frozen=True)
class Run:
    """One finished `get-token` process."""

    returncode: int
    stderr: str
    max_rss_mib: float


def run_measured(command: Sequence[str]) -> Run:
    """Run `command` to the end; its own peak RSS, from wait4 (not the max over all children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        return Run(
            returncode=process.returncode,
            stderr=err.read().decode(errors="replace"),
            max_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        )


def get_token(rig: Rig, runs: int) -> list[Row]:
    """`get-token` against the running agent: import time, modules loaded, peak RSS."""
    command = [CLI[0], "-X", "importtime", *CLI[1:], "--config", str(rig.config), "get-token"]
    imports: list[Imports] = []
    rss: list[float] = []
    for _ in range(runs):
        run = run_measured(command)
        if run.returncode != 0:
            raise SystemExit(f"get-token failed:\n{run.stderr[-2000:]}")
        imports.append(imports_in(run.stderr))
        rss.append(run.max_rss_mib)
    return _rows("get-token", "peak resident memory", imports, rss)


def agent(rig: Rig, watch: Watch, runs: int) -> list[Row]:
    """The agent (`run`) started `runs` times with -X importtime and `runs` times without:
    its imports up to the first token, and its RSS when the first token is out.
    Leaves a normally started agent running."""
    log = rig.config.parent / "agent.log"
    imports: list[Imports] = []
    rss: list[float] = []
    for _ in range(runs):
        start = log.stat().st_size if log.exists() else 0
        seen = len(watch.arrivals)
        rig.start_agent(python_flags=("-X", "importtime"))
        watch.wait_count(seen + 1)
        rig.stop_agent()
        with log.open("rb") as text:
            text.seek(start)
            imports.append(imports_in(text.read().decode(errors="replace")))
    for _ in range(runs):
        seen = len(watch.arrivals)
        rig.start_agent()
        watch.wait_count(seen + 1)
        rss.append(rss_mib(rig.pid))
    return _rows("agent", "resident memory at first token", imports, rss)


def _rows(who: str, memory: str, imports: Sequence[Imports], rss: Sequence[float]) -> list[Row]:
    times = [i.seconds * 1000 for i in imports]
    counts = sorted({len(i.modules) for i in imports})
    modules = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return [
        (
            f"{who} import time (-X importtime, summed), median of {len(times)}",
            f"{statistics.median(times):.1f} ms (min {min(times):.1f}; {modules} modules)",
            NO_TARGET,
        ),
        (f"{who} {memory}, median of {len(rss)}", f"{statistics.median(rss):.1f} MiB", NO_TARGET),
    ]
