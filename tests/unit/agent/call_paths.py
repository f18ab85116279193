"""The path a step of the agent takes through the package, traced as it runs.

`trace(step)` records every call into a function of `mqtt_tokend` while `step` runs: how many
calls, which files they entered, and every call-back. A call-back is a call into a
method of an object that is already running further down the stack with another object's
method in between: A asks B, and B calls A again. That is the hand-off issue #19 removed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PACKAGE = Path(__file__).resolve().parents[3] / "mqtt_tokend"
# Generated code has no object of its own to call back into.
SKIPPED = ("<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>", "<lambda>")


@dataclass
class StepPath:
    """What one traced step did."""

    calls: int = 0
    functions: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    callbacks: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.calls} calls into {len(self.functions)} functions in {len(self.files)} files, "
            f"{len(self.callbacks)} call-backs"
        )


def _owner(frame: FrameType) -> object | None:
    """The object whose method this frame runs, or None for a function."""
    code = frame.f_code
    if code.co_argcount == 0 or code.co_varnames[0] != "self":
        return None
    return frame.f_locals.get("self")


def trace(step: Callable[[], Any], *, root: Path = PACKAGE) -> StepPath:
    """Run `step`, tracing the calls it makes into the package's files under `root`."""
    found = StepPath()
    stack: list[tuple[object | None, str]] = []  # (owner, qualified name) of the package frames

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        code = frame.f_code
        if not code.co_filename.startswith(str(root)) or code.co_name in SKIPPED:
            return
        if event == "call":
            owner = _owner(frame)
            name = f"{Path(code.co_filename).relative_to(root)}:{code.co_qualname}"
            found.calls += 1
            found.functions.add(name)
            found.files.add(code.co_filename)
            if owner is not None and stack and stack[-1][0] is not owner:
                below = [i for i, (o, _) in enumerate(stack) if o is owner]
                if below:
                    chain = " -> ".join(n for _, n in stack[below[-1] :])
                    found.callbacks.append(f"{chain} -> {name}")
            stack.append((owner, name))
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        step()
    finally:
        sys.setprofile(None)
    return found
