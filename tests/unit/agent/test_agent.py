"""The agent's loop with an injected clock, a fake Spotify and a recording publisher."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.wire import token_sha256
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import Connected, Request
from mqtt_tokend.errors import AccessTokenRejected, AuthRejected, ClientRejected, TransientError
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, running_agent
from tests.unit.agent.helpers import TOPICS, health, request


def test_valid_stored_token_is_published_without_calling_spotify(
    agent: Agent, publisher: FakePublisher, spotify: FakeSpotify, cipher: TokenCipher
) -> None:
    assert spotify.refresh_calls == []
    token = publisher.last(TOPICS.token)
    assert token.retain
    assert cipher.decrypt_json(token.payload)["access_token"] == "access-0"
    assert token.expiry == 3000
    assert publisher.last(TOPICS.availability).payload == b"online"
    assert health(publisher)["state"] == "ok"


def test_refresh_happens_exactly_at_expiry_minus_lead(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify
) -> None:
    # expires in 3000 s, lead 600 s: due in 2400 s, and not a moment sooner
    clock.advance(2399)
    agent.step()
    assert spotify.refresh_calls == []
    assert min(agent.seconds_until_next_deadline(), 1) == pytest.approx(1)
    clock.advance(1)
    agent.step()
    assert spotify.refresh_calls == ["refresh-0"]


def test_rotated_refresh_token_is_on_disk_before_the_token_is_published(
    agent: Agent,
    clock: FakeClock,
    store: TokenStore,
    publisher: FakePublisher,
    cipher: TokenCipher,
) -> None:
    seen_on_disk: list[str] = []
    original = publisher.publish

    def spy(topic: str, payload: bytes | str, **kwargs: object) -> None:
        if topic == TOPICS.token and payload:
            loaded = store.load()
            assert loaded is not None
            seen_on_disk.append(loaded.refresh_token)
        original(topic, payload, **kwargs)  # type: ignore[arg-type]

    publisher.publish = spy  # type: ignore[method-assign]
    clock.advance(2400)
    agent.step()
    assert seen_on_disk and set(seen_on_disk) == {"refresh-1"}
    assert cipher.decrypt_json(publisher.last(TOPICS.token).payload)["access_token"] == "access-1"


@pytest.mark.parametrize("expires_in", [-10.0], ids=["expired-at-start"])
def test_expired_stored_token_is_refreshed_at_start(
    agent: Agent, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    assert spotify.refresh_calls == ["refresh-0"]
    assert health(publisher)["state"] == "ok"


def test_transient_failures_back_off_exponentially_within_the_cap(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    spotify.failures = [TransientError("503", status=503) for _ in range(12)]
    clock.advance(2400)
    waits = []
    for _ in range(12):
        agent.step()
        wait = agent.seconds_until_next_deadline()
        waits.append(wait)
        clock.advance(wait)
    assert len(spotify.refresh_calls) == 12
    assert all(0 <= w <= 300 for w in waits)
    assert health(publisher)["state"] == "retrying"  # seeded jitter: the token outlives them
    assert health(publisher)["consecutive_failures"] == 12
    agent.step()  # the 13th attempt succeeds
    assert health(publisher)["state"] == "ok"
    assert health(publisher)["consecutive_failures"] == 0


def test_retry_after_is_honoured_even_past_max_backoff(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    spotify.failures = [TransientError("429", status=429, retry_after=900)]
    clock.advance(2400)
    agent.step()
    assert health(publisher)["next_refresh"] == pytest.approx(clock.wall() + 900, abs=1)
    # a refresh request during the hold does not reach Spotify
    clock.advance(60)
    agent.step(request(clock, "refresh", {"transaction": 1}))
    assert len(spotify.refresh_calls) == 1
    assert health(publisher)["state"] == "retrying"


def test_invalid_grant_stops_refreshing_and_asks_a_human(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    spotify.failures = [AuthRejected("revoked", description="Refresh token revoked")]
    clock.advance(2400)
    agent.step()
    record = health(publisher)
    assert record["state"] == "auth_required"
    assert "mqtt-tokend" in str(record["instructions"])
    for _ in range(5):
        clock.advance(3600)
        agent.step()
    assert len(spotify.refresh_calls) == 1  # never retried in a loop


def test_invalid_client_is_reported_as_configuration(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    spotify.failures = [ClientRejected("Spotify rejected the client: check spotify.client_id")]
    clock.advance(2400)
    agent.step()
    assert health(publisher)["state"] == "error"
    assert "client_id" in str(health(publisher)["message"])


def test_burst_of_refresh_requests_costs_one_call(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    burst = [request(clock, "refresh", {"transaction": i}) for i in range(1000)]
    for item in burst:
        agent.step(item)
    assert len(spotify.refresh_calls) == 1
    responses = publisher.on(TOPICS.response("refresh"))
    assert len(responses) == 1000
    assert {r.json()["transaction"] for r in responses} == set(range(1000))
    assert all(r.json()["status"] == "ok" for r in responses)
    assert sum(r.json()["data"]["refreshed"] for r in responses) == 1


def test_plain_request_soon_after_a_refresh_gets_the_current_token(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify
) -> None:
    agent.step(request(clock, "refresh"))
    clock.advance(10)
    agent.step(request(clock, "refresh"))
    assert len(spotify.refresh_calls) == 1
    clock.advance(21)
    agent.step(request(clock, "refresh"))
    assert len(spotify.refresh_calls) == 2


def test_rejected_current_token_is_refreshed_at_once_but_only_once(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify
) -> None:
    agent.step(request(clock, "refresh"))  # access-1 is now current
    clock.advance(1)
    stale = {"reason": "rejected", "token_sha256": token_sha256("access-0")}
    agent.step(request(clock, "refresh", stale))
    assert len(spotify.refresh_calls) == 1  # an old token: the current one is the answer
    current = {"reason": "rejected", "token_sha256": token_sha256("access-1")}
    agent.step(request(clock, "refresh", current))
    agent.step(request(clock, "refresh", current))
    assert len(spotify.refresh_calls) == 2


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"reason": 5}', "'reason' must be a string"),
        (b"x" * 100_000, "too large"),
    ],
    ids=["text", "binary", "array", "wrong-type", "huge"],
)
def test_malformed_requests_get_an_error_and_change_nothing(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    raw: bytes,
    error: str,
) -> None:
    before = agent.state
    agent.step(request(clock, "refresh", raw=raw))
    answer = publisher.last(TOPICS.response("refresh")).json()
    assert answer["status"] == "error"
    assert error in answer["error"]
    assert spotify.refresh_calls == []
    assert agent.state == before


def test_unknown_verb_and_retained_requests(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    agent.step(request(clock, "explode", {"transaction": "t"}))
    answer = publisher.last(TOPICS.response("explode")).json()
    assert answer == {
        "status": "error",
        "data": {},
        "error": answer["error"],
        "transaction": "t",
    }
    assert "unknown verb" in answer["error"]
    agent.step(request(clock, "refresh", retain=True))
    assert spotify.refresh_calls == []
    assert publisher.on(TOPICS.response("refresh")) == []


def test_mqtt5_response_topic_and_correlation_data_are_honoured(
    agent: Agent, clock: FakeClock, publisher: FakePublisher
) -> None:
    inbox = TOPICS.response("status/client-7")
    message = Message(
        topic=TOPICS.request("status"),
        payload=b"",
        response_topic=inbox,
        correlation_data=b"\x01\x02",
    )
    agent.step(Request(message=message, received=clock.monotonic()))
    answer = publisher.last(inbox)
    assert answer.reply is not None and answer.reply.correlation_data == b"\x01\x02"
    assert answer.json()["data"]["state"] == "ok"


def test_check_refreshes_when_spotify_refuses_the_access_token(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    spotify.me_failures = [AccessTokenRejected("401", status=401)]
    clock.advance(300)
    agent.step()
    assert spotify.refresh_calls == ["refresh-0"]
    assert spotify.me_calls == 2  # verified at start, refused at the check
    assert health(publisher)["user"] == "Demo User"
    assert health(publisher)["state"] == "ok"


def test_health_check_runs_every_interval(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify
) -> None:
    calls = spotify.me_calls
    clock.advance(299)
    agent.step()
    assert spotify.me_calls == calls
    clock.advance(1)
    agent.step()
    assert spotify.me_calls == calls + 1


def test_reconnect_republishes_all_retained_state(agent: Agent, publisher: FakePublisher) -> None:
    publisher.messages.clear()
    agent.step(Connected())
    topics = {m.topic for m in publisher.messages if m.retain}
    assert {TOPICS.availability, TOPICS.token, TOPICS.health} <= topics


def test_a_new_login_stored_by_auth_is_picked_up(
    agent: Agent,
    clock: FakeClock,
    store: TokenStore,
    tokens: Tokens,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    cipher: TokenCipher,
) -> None:
    spotify.failures = [AuthRejected("revoked")]
    clock.advance(2400)
    agent.step()
    assert agent.state == State.AUTH_REQUIRED
    store.save(
        replace(
            tokens,
            access_token="fresh",
            refresh_token="fresh-rt",
            issued_at=clock.wall(),
            expires_at=clock.wall() + 3600,
        )
    )
    agent.step()
    assert agent.state == State.OK
    assert cipher.decrypt_json(publisher.last(TOPICS.token).payload)["access_token"] == "fresh"


def test_without_any_login_the_agent_waits_for_one(
    config: Config,
    cipher: TokenCipher,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    clock: FakeClock,
) -> None:
    store = TokenStore(config.agent.state_dir, cipher=cipher)
    agent = running_agent(
        config=config, store=store, spotify=spotify, cipher=cipher, publisher=publisher, clock=clock
    )
    assert agent.state == State.AUTH_REQUIRED
    assert publisher.last(TOPICS.token).payload == b""  # no stale token left retained
    assert agent.seconds_until_next_deadline() <= 2.0


def test_final_messages_say_offline(agent: Agent) -> None:
    final = dict(agent.final_messages())
    assert final[TOPICS.availability] == b"offline"
    assert json.loads(final[TOPICS.health])["message"] == "agent stopped"
