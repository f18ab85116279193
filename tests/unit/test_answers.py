"""Request answering against its `Session` protocol alone, with a recording publisher."""

from __future__ import annotations

from typing import Any

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.daemon.answers import RequestHandler
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import InputError
from tests.fakes import FakePublisher

TOPICS = Topics("test/answers")
HEALTH = {"state": "auth_required", "message": "the login has expired"}


class StubSession:
    """A session that has no login and refuses every pasted one."""

    def __init__(self) -> None:
        self.checks = 0
        self.failures: list[str] = []

    def health_payload(self) -> dict[str, Any]:
        return dict(HEALTH)

    def check(self) -> None:
        self.checks += 1

    def refresh_on_request(self, request: Request, body: dict[str, Any]) -> bool | None:
        return None

    def finish_login(self, payload: bytes) -> dict[str, Any]:
        raise InputError("no login is pending: the agent is logged in")

    def login_failed(self, message: str) -> None:
        self.failures.append(message)


def ask(verb: str, payload: bytes = b"") -> tuple[StubSession, FakePublisher]:
    session, publisher = StubSession(), FakePublisher()
    out = Broadcaster(publisher, TOPICS, TokenCipher([generate_key()]))
    RequestHandler(session, out).handle(Request(Message(TOPICS.request(verb), payload), 0.0))
    return session, publisher


def test_a_refresh_without_a_login_is_an_error_carrying_the_health_message() -> None:
    _, publisher = ask("refresh", b'{"transaction": 7}')
    answer = publisher.last(TOPICS.response("refresh")).json()
    assert answer == {
        "status": "error",
        "data": HEALTH,
        "error": "the login has expired",
        "transaction": 7,
    }


def test_a_check_request_runs_one_check_and_answers_with_the_health() -> None:
    session, publisher = ask("check")
    assert session.checks == 1
    assert publisher.last(TOPICS.response("check")).json()["data"] == HEALTH


def test_a_refused_pasted_login_is_told_to_the_session_and_the_sender() -> None:
    session, publisher = ask("auth", b"http://127.0.0.1:8888/callback?code=c&state=s")
    answer = publisher.last(TOPICS.response("auth")).json()
    assert answer["status"] == "error" and "no login is pending" in answer["error"]
    assert session.failures == [
        "the pasted login was not accepted: no login is pending: the agent is logged in"
    ]
