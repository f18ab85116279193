"""The daemon path reads top-down: a timer refresh and an answered `request/refresh`, traced
through the real agent, make no call-back (no object hands itself to another that calls it).

`.venv/bin/python -m pytest tests/unit/agent/test_call_paths.py -q -s` prints the calls and
files of each path (docs/architecture.md quotes them).
"""

from __future__ import annotations

from pathlib import Path

from mqtt_tokend.daemon.agent import Agent
from tests.fakes import FakeClock, FakePublisher, FakeSpotify
from tests.unit.agent.call_paths import trace
from tests.unit.agent.helpers import TOPICS, request


def test_a_timer_refresh_runs_top_down(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    clock.advance(2500)  # past expires_at - refresh_early_seconds
    path = trace(agent.step)
    assert spotify.refresh_calls == ["refresh-0"]
    assert publisher.last(TOPICS.token) is not None
    print(f"\n[path] timer refresh: {path.describe()}")
    assert path.callbacks == []


def test_an_answered_refresh_request_runs_top_down(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    clock.advance(10)
    path = trace(lambda: agent.step(request(clock, "refresh")))
    assert spotify.refresh_calls == ["refresh-0"]
    assert publisher.last(TOPICS.response("refresh")).json()["data"]["refreshed"] is True
    print(f"\n[path] request/refresh answered: {path.describe()}")
    assert path.callbacks == []


class _Loop:
    def __init__(self) -> None:
        self.handler = _Handler()
        self.done = 0

    def step(self) -> None:
        self.handler.handle(self)

    def finish(self) -> None:
        self.done += 1


class _Handler:
    def handle(self, loop: _Loop) -> None:
        loop.finish()  # the hand-off the trace must see


def test_the_trace_sees_an_object_that_hands_itself_over() -> None:
    loop = _Loop()
    path = trace(loop.step, root=Path(__file__).parent)
    assert loop.done == 1
    assert path.callbacks == [
        "test_call_paths.py:_Loop.step -> test_call_paths.py:_Handler.handle "
        "-> test_call_paths.py:_Loop.finish"
    ]
    assert path.calls == 3 and len(path.files) == 1
