"""Request answering alone: its decisions carried out on a stub session, with a recording
publisher."""

from __future__ import annotations

from typing import Any

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome
from mqtt_tokend.daemon.answers import (
    CHECK_MIN_INTERVAL,
    FAILED_LOGIN_REPORT_INTERVAL,
    Done,
    RequestHandler,
    Work,
)
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.remote_login import REFUSED
from mqtt_tokend.errors import InputError, TokendError
from tests.fakes import FakePublisher

TOPICS = Topics("test/answers")
HEALTH = {"state": "auth_required", "message": "the login has expired"}


class StubSession:
    """A session that has no login and refuses every pasted one."""

    def __init__(self) -> None:
        self.checks = 0
        self.failures = 0

    def health_payload(self) -> dict[str, Any]:
        return dict(HEALTH)

    def check(self) -> None:
        self.checks += 1

    def refresh_on_request(self, request: Request, body: dict[str, Any]) -> RefreshOutcome:
        return RefreshOutcome(refreshed=False, reason=NotRefreshed.NO_LOGIN)

    def finish_login(self, payload: bytes) -> dict[str, Any]:
        raise InputError("no login is pending: the agent is logged in")

    def login_refused(self) -> None:
        self.failures += 1


class Answering:
    """The handler with the agent's part played by a stub session: decide, do, answer."""

    def __init__(self, session: StubSession, handler: RequestHandler) -> None:
        self.session = session
        self.handler = handler

    def handle(self, request: Request) -> None:
        decision = self.handler.decide(request)
        if decision is None:
            return
        if decision.work == Work.LOGIN:
            try:
                profile: dict[str, Any] | None = self.session.finish_login(decision.pasted)
            except TokendError:
                profile = None
            if self.handler.answer(decision, Done(profile=profile)):
                self.session.login_refused()
            return
        refreshed = None
        if decision.work == Work.CHECK:
            self.session.check()
        elif decision.work == Work.REFRESH:
            refreshed = self.session.refresh_on_request(decision.request, decision.body)
        done = Done(health=self.session.health_payload(), refreshed=refreshed)
        self.handler.answer(decision, done)


def ask(verb: str, payload: bytes = b"") -> tuple[StubSession, FakePublisher]:
    session, publisher = StubSession(), FakePublisher()
    out = Broadcaster(publisher, TOPICS, TokenCipher([generate_key()]))
    Answering(session, RequestHandler(out)).handle(
        Request(Message(TOPICS.request(verb), payload), 0.0)
    )
    return session, publisher


def test_a_refresh_without_a_login_is_an_error_carrying_the_health_message() -> None:
    _, publisher = ask("refresh", b'{"transaction": 7}')
    answer = publisher.last(TOPICS.response("refresh")).json()
    assert answer == {
        "status": "error",
        "data": {"refreshed": False, "reason": "no_login", "next_allowed_at": None} | HEALTH,
        "error": "the login has expired",
        "transaction": 7,
    }


def test_a_check_request_runs_one_check_and_answers_with_the_health() -> None:
    session, publisher = ask("check")
    assert session.checks == 1
    assert publisher.last(TOPICS.response("check")).json()["data"] == HEALTH


def test_a_refused_pasted_login_is_told_to_the_session_and_the_sender_in_one_sentence() -> None:
    session, publisher = ask("auth", b"http://127.0.0.1:8888/callback?code=c&state=s")
    answer = publisher.last(TOPICS.response("auth")).json()
    assert answer == {"status": "error", "data": {}, "error": REFUSED}
    assert "no login is pending" not in answer["error"]  # the session's words stay inside
    assert session.failures == 1


# ---- hostile requests ---------------------------------------------------------------------


class Clock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def handler(clock: Clock | None = None) -> tuple[Answering, StubSession, FakePublisher]:
    session, publisher = StubSession(), FakePublisher()
    out = Broadcaster(publisher, TOPICS, TokenCipher([generate_key()]))
    return Answering(session, RequestHandler(out, now=clock or Clock())), session, publisher


def request(verb: str, payload: bytes = b"", *, at: float = 0.0, **mqtt5: Any) -> Request:
    return Request(Message(TOPICS.request(verb), payload, **mqtt5), at)


@pytest.mark.parametrize(
    "topic",
    [
        "test/answers/request/auth",  # the agent would read its own reply as a pasted login
        "test/answers/token",
        "test/answers/health",
        "homeassistant/sensor/evil/config",
        "test/answers/response",  # the prefix itself, not a topic under it
        "test/answers/response/+",
        "test/answers/responsex/refresh",
        "test/answers/response/" + "x" * 300,
    ],
)
def test_a_response_topic_outside_response_is_refused_on_the_verbs_own_reply_topic(
    topic: str,
) -> None:
    answers, session, publisher = handler()
    answers.handle(request("refresh", b'{"transaction": 3}', response_topic=topic))
    answers.handle(request("check", response_topic=topic))
    answers.handle(request("auth", b"?code=c&state=s", response_topic=topic))
    assert {p.topic for p in publisher.messages} == {
        TOPICS.response("refresh"),
        TOPICS.response("check"),
        TOPICS.response("auth"),
    }
    for published in publisher.messages:
        answer = published.json()
        assert answer["status"] == "error" and "Response Topic" in answer["error"]
    assert session.checks == 0 and session.failures == 0  # refused: nothing was done


def test_a_response_topic_under_response_is_honoured() -> None:
    answers, _, publisher = handler()
    inbox = TOPICS.response("refresh/player-1")
    answers.handle(request("status", response_topic=inbox, correlation_data=b"\x07"))
    assert publisher.last(inbox).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("topic", "honoured"),
    [
        ("test/answers/response/auth", True),
        ("test/answers/response/auth/ha-1", True),
        ("test/answers/response/refresh", False),  # the player reads it
        ("test/answers/response/authx", False),
        ("test/answers/response/status/auth", False),
    ],
)
def test_a_pasted_logins_reply_goes_only_under_response_auth(topic: str, honoured: bool) -> None:
    """The ACL lets only the agent and Home Assistant read `<base>/response/auth`: a Response
    Topic elsewhere under response/ would hand the reply to a login to the player."""
    answers, session, publisher = handler()
    answers.handle(request("auth", b"?code=c&state=s", response_topic=topic))
    assert {p.topic for p in publisher.messages} == {topic if honoured else TOPICS.response("auth")}
    assert session.failures == (1 if honoured else 0)


def test_refused_response_topics_are_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    answers, _, _ = handler(clock)
    for _ in range(1000):
        answers.handle(request("status", response_topic="test/answers/token"))
    clock.now += 60
    answers.handle(request("status", response_topic="test/answers/token"))
    lines = [r.getMessage() for r in caplog.records if "Response Topic" in r.getMessage()]
    assert lines == [
        "refused 1 request(s) whose MQTT 5 Response Topic is not under test/answers/response/",
        "refused 1000 request(s) whose MQTT 5 Response Topic is not under test/answers/response/",
    ]


def test_a_burst_of_checks_costs_one_check_per_interval() -> None:
    clock = Clock()
    answers, session, publisher = handler(clock)
    for _ in range(10_000):
        answers.handle(request("check", at=clock.now - 1))
    assert session.checks == 1
    assert len(publisher.on(TOPICS.response("check"))) == 10_000  # each is answered
    clock.now += CHECK_MIN_INTERVAL - 1
    answers.handle(request("check", at=clock.now))
    assert session.checks == 1
    clock.now += 1
    answers.handle(request("check", at=clock.now))
    assert session.checks == 2


def test_a_flood_of_failed_pastes_is_reported_once_a_minute() -> None:
    clock = Clock()
    answers, session, publisher = handler(clock)
    for _ in range(10_000):
        answers.handle(request("auth", b""))
    assert session.failures == 1
    assert len(publisher.on(TOPICS.response("auth"))) == 10_000
    clock.now += FAILED_LOGIN_REPORT_INTERVAL
    answers.handle(request("auth", b""))
    assert session.failures == 2
