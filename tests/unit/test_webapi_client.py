"""SpotifyClient's decisions with a scripted transport and consumer: no sockets, no sleeps (the
client's sleep and clock are injected). The integration tests run the same against the agent."""

from __future__ import annotations

from typing import Any

import pytest

from mqtt_tokend.consumer import Token
from mqtt_tokend.errors import BrokerError, TransientError
from mqtt_tokend.webapi import (
    LoginNeeded,
    RateLimited,
    RetryPolicy,
    SpotifyClient,
    SpotifyUnavailable,
    TokenUnavailable,
)
from mqtt_tokend.webapi.health import Login
from mqtt_tokend.webapi.transport import Reply


class Consumer:
    """A TokenConsumer stand-in: hands out numbered tokens; a rejected one is replaced."""

    def __init__(self, kind: str = "user", *, tokens: bool = True) -> None:
        self.kind, self.tokens, self.number, self.reports = kind, tokens, 1, 0

    def _token(self) -> Token:
        return Token(f"{self.kind}-{self.number}", expires_at=9e9, issued_at=0.0, kind=self.kind)

    def token(self, timeout: float = 10.0) -> Token:
        if not self.tokens:
            raise BrokerError("no valid token: is the agent running and logged in?")
        return self._token()

    def current(self) -> Token | None:
        return self._token() if self.tokens else None

    def report_rejected(self, token: Token | None = None) -> bool:
        self.reports += 1
        self.number += 1
        return True

    def stop(self) -> None:
        pass


class Health:
    def __init__(self, login: Login) -> None:
        self.state = login

    def login(self, wait: float = 0.0) -> Login:
        return self.state

    def stop(self) -> None:
        pass


class Transport:
    """Answers from a script: a status, (status, headers) or an exception, then 200s."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, str, str]] = []

    def send(self, method: str, path: str, *, authorization: str, **_: Any) -> Reply:
        self.sent.append((method, path, authorization))
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        return Reply(status, headers, {"ok": True} if status < 300 else None)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


OK = Login("ok")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def client(
    transport: Transport,
    clock: Clock,
    *,
    user: Consumer | None = None,
    app: Consumer | None = None,
    login: Login = OK,
) -> SpotifyClient:
    return SpotifyClient(
        user=user or Consumer(),  # type: ignore[arg-type]
        app=app,  # type: ignore[arg-type]
        health=Health(login),  # type: ignore[arg-type]
        transport=transport,  # type: ignore[arg-type]
        policy=RetryPolicy(token_timeout=0.0),
        sleep=clock.sleep,
        rng=lambda: 1.0,
        clock=clock,
    )


def test_a_401_is_reported_once_and_retried_with_the_new_token(clock: Clock) -> None:
    user = Consumer()
    transport = Transport(401)
    assert client(transport, clock, user=user).get("/v1/me") == {"ok": True}
    assert [auth for _, _, auth in transport.sent] == ["Bearer user-1", "Bearer user-2"]
    assert user.reports == 1 and clock.slept == []


@pytest.mark.parametrize(
    ("retry_after", "slept", "raised"),
    [("2", [2.0], False), ("30", [30.0], False), ("31", [], True), ("garbage", [1.0], False)],
    ids=["short", "at-the-cap", "past-the-cap", "unreadable"],
)
def test_a_429_waits_its_retry_after_up_to_the_cap(
    clock: Clock, retry_after: str, slept: list[float], raised: bool
) -> None:
    transport = Transport((429, {"Retry-After": retry_after}))
    spotify = client(transport, clock)
    if raised:
        with pytest.raises(RateLimited):
            spotify.get("/v1/me")
        with pytest.raises(RateLimited):  # shared: the next call does not go out at all
            spotify.get("/v1/search", q="x")
        assert len(transport.sent) == 1
    else:
        assert spotify.get("/v1/me") == {"ok": True}
        assert len(transport.sent) == 2
    assert clock.slept == slept


def test_429s_are_retried_a_bounded_number_of_times(clock: Clock) -> None:
    transport = Transport(*[(429, {"Retry-After": "1"})] * 10)
    with pytest.raises(RateLimited):
        client(transport, clock).get("/v1/me")
    assert len(transport.sent) == RetryPolicy().rate_limit_retries + 1


@pytest.mark.parametrize(
    "failure",
    [500, 502, 503, 504, TransientError("no answer")],
    ids=["500", "502", "503", "504", "no-answer"],
)
def test_server_failures_back_off_with_jitter_and_stop(clock: Clock, failure: Any) -> None:
    transport = Transport(*[failure] * 10)
    with pytest.raises(SpotifyUnavailable, match="try again in a minute"):
        client(transport, clock).get("/v1/me")
    assert len(transport.sent) == RetryPolicy().server_retries + 1
    assert clock.slept == [0.5, 1.0, 2.0]  # rng() = 1: the ceiling of each full-jitter draw


def test_a_post_is_sent_once(clock: Clock) -> None:
    transport = Transport(503)
    with pytest.raises(SpotifyUnavailable):
        client(transport, clock).request("POST", "/v1/me/player/queue")
    assert len(transport.sent) == 1


NEEDS_PERSON = Login("auth_required", "On the Pi run: sudo mqtt-tokend auth")


@pytest.mark.parametrize(
    ("method", "path", "app_used"),
    [("GET", "/v1/search", True), ("GET", "/v1/tracks/abc", True), ("GET", "/v1/me", False)],
    ids=["search", "track", "me"],
)
def test_while_a_person_is_needed_only_the_catalog_uses_the_app_token(
    clock: Clock, method: str, path: str, app_used: bool
) -> None:
    transport = Transport()
    spotify = client(
        transport, clock, user=Consumer(tokens=False), app=Consumer("app"), login=NEEDS_PERSON
    )
    if app_used:
        assert spotify.request(method, path) == {"ok": True}
        assert transport.sent == [(method, path, "Bearer app-1")]
    else:
        with pytest.raises(LoginNeeded, match="sudo mqtt-tokend auth") as raised:
            spotify.request(method, path)
        assert raised.value.instructions == NEEDS_PERSON.instructions
        assert transport.sent == []


def test_an_outage_is_not_a_login_problem(clock: Clock) -> None:
    """degraded without instructions: Spotify is down and the token ran out, no person needed."""
    spotify = client(Transport(), clock, user=Consumer(tokens=False), login=Login("degraded"))
    with pytest.raises(TokenUnavailable, match="mqtt-tokend status"):
        spotify.get("/v1/me")


def test_no_token_and_no_health_says_is_the_agent_running(clock: Clock) -> None:
    spotify = client(Transport(), clock, user=Consumer(tokens=False), login=Login(None))
    with pytest.raises(TokenUnavailable, match="is the agent running"):
        spotify.get("/v1/me")
