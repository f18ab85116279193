"""The agent's loop with an injected clock, a fake Spotify and a recording publisher."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import AgentConfig, Config, HomeAssistantConfig, MqttConfig, SpotifyConfig
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wire import token_sha256
from mqtt_tokend.daemon.agent import BIRTH_COALESCE, Agent
from mqtt_tokend.daemon.inbox import Connected, Request
from mqtt_tokend.errors import AccessTokenRejected, AuthRejected, ClientRejected, TransientError
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, running_agent

BASE = "test/agent"
TOPICS = Topics(BASE)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        spotify=SpotifyConfig(client_id="client"),
        mqtt=MqttConfig(base_topic=BASE),
        agent=AgentConfig(
            state_dir=tmp_path / "state",
            key_file=tmp_path / "key",
            check_interval=300,
            refresh_early_seconds=600,
            max_backoff=300,
            min_refresh_interval=30,
        ),
        homeassistant=HomeAssistantConfig(),
    )


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([generate_key()])


@pytest.fixture
def expires_in() -> float:
    """Seconds the stored token has left when the agent starts."""
    return 3000.0


@pytest.fixture
def tokens(clock: FakeClock, expires_in: float) -> Tokens:
    now = clock.wall()
    return Tokens(
        access_token="access-0",
        refresh_token="refresh-0",
        expires_at=now + expires_in,
        scope="user-read-playback-state",
        issued_at=now + expires_in - 3600,
        authorized_at=now - 86400,
    )


@pytest.fixture
def store(config: Config, cipher: TokenCipher, tokens: Tokens) -> TokenStore:
    store = TokenStore(config.agent.state_dir, cipher=cipher)
    store.save(tokens)
    return store


@pytest.fixture
def spotify() -> FakeSpotify:
    return FakeSpotify()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def agent(
    config: Config,
    store: TokenStore,
    spotify: FakeSpotify,
    cipher: TokenCipher,
    publisher: FakePublisher,
    clock: FakeClock,
) -> Agent:
    return running_agent(
        config=config, store=store, spotify=spotify, cipher=cipher, publisher=publisher, clock=clock
    )


def request(
    clock: FakeClock, verb: str, body: object = None, *, retain: bool = False, raw: bytes = b""
) -> Request:
    payload = raw or (json.dumps(body).encode() if body is not None else b"")
    message = Message(topic=TOPICS.request(verb), payload=payload, retain=retain)
    return Request(message=message, received=clock.monotonic())


def health(publisher: FakePublisher) -> dict[str, object]:
    result: dict[str, object] = publisher.last(TOPICS.health).json()
    return result


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


def refresh_reply(agent: Agent, publisher: FakePublisher, item: Request) -> dict[str, object]:
    agent.step(item)
    data: dict[str, object] = publisher.last(TOPICS.response("refresh")).json()["data"]
    return data


STALE = {"reason": "rejected", "token_sha256": token_sha256("access-0")}


@pytest.mark.parametrize(
    ("failure", "body", "reason", "allowed_in"),
    [
        (None, None, "rate_limited", 20.0),
        (None, STALE, "not_current", 20.0),
        (TransientError("503", status=503), None, "failed", 20.0),
        (TransientError("429", status=429, retry_after=120), None, "failed", 120.0),
    ],
    ids=["rate-limited", "out-of-date-hash", "spotify-failed", "spotify-429"],
)
def test_a_refresh_not_made_says_why_and_when_the_next_is_allowed(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    failure: TransientError | None,
    body: dict[str, str] | None,
    reason: str,
    allowed_in: float,
) -> None:
    first = refresh_reply(agent, publisher, request(clock, "refresh"))  # access-1 is current
    assert first["refreshed"] is True and "reason" not in first
    clock.advance(10)
    if failure is not None:  # a rejected report of the current token passes the rate limit
        spotify.failures = [failure]
        body = {"reason": "rejected", "token_sha256": token_sha256("access-1")}
    data = refresh_reply(agent, publisher, request(clock, "refresh", body))
    assert data["refreshed"] is False and data["reason"] == reason
    assert data["next_allowed_at"] == pytest.approx(clock.wall() + allowed_in, abs=0.01)
    assert data["expires_at"] == health(publisher)["expires_at"]  # the current token's expiry
    if failure is not None and failure.retry_after is not None:  # then every request waits
        clock.advance(60)
        held = refresh_reply(agent, publisher, request(clock, "refresh", body))
        assert (held["reason"], held["next_allowed_at"]) == ("retry_after", data["next_allowed_at"])


def test_requests_a_refresh_answered_share_its_outcome_as_single_flight(
    agent: Agent, clock: FakeClock, spotify: FakeSpotify, publisher: FakePublisher
) -> None:
    first, second = request(clock, "refresh"), request(clock, "refresh")
    assert refresh_reply(agent, publisher, first)["refreshed"] is True
    data = refresh_reply(agent, publisher, second)
    assert (data["refreshed"], data["reason"]) == (False, "single_flight")
    assert len(spotify.refresh_calls) == 1


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


# ---- recovery, people, time (issue 4) ---------------------------------------------------


def alerts(publisher: FakePublisher) -> list[str]:
    return [m.json()["event"] for m in publisher.on(TOPICS.alert)]


def revoke(agent: Agent, clock: FakeClock, spotify: FakeSpotify) -> None:
    spotify.failures = [AuthRejected("revoked", description="Refresh token revoked")]
    clock.advance(2400)
    agent.step()


def test_revocation_writes_the_notice_alerts_once_and_offers_a_login(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    config: Config,
) -> None:
    revoke(agent, clock, spotify)
    notice = config.agent.state_dir / "auth_failure_notice.txt"
    assert "mqtt-tokend" in notice.read_text() and "auth" in notice.read_text()
    assert alerts(publisher) == ["auth_required"]
    record = health(publisher)
    assert record["login_pending"] is True and record["login_topic"] == TOPICS.login
    assert "state=" not in json.dumps(record)
    assert "state=" in publisher.last(TOPICS.login).payload.decode()
    assert publisher.last(TOPICS.token).payload  # still served while it lasts
    for _ in range(3):
        clock.advance(LONG)
        agent.step()
    assert alerts(publisher) == ["auth_required"]  # not repeated
    assert publisher.last(TOPICS.token).payload == b""  # cleared once expired


LONG = 400.0


def test_a_new_login_clears_the_notice_with_a_recovered_alert(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    store: TokenStore,
    tokens: Tokens,
    config: Config,
) -> None:
    revoke(agent, clock, spotify)
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
    assert alerts(publisher) == ["auth_required", "recovered"]
    assert not (config.agent.state_dir / "auth_failure_notice.txt").exists()
    assert health(publisher)["instructions"] is None
    assert health(publisher)["login_pending"] is False
    assert publisher.last(TOPICS.login).payload == b""  # the offered login is withdrawn


def test_login_pasted_over_mqtt_repairs_the_session(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
) -> None:
    revoke(agent, clock, spotify)
    url = publisher.last(TOPICS.login).payload.decode()
    state = url.split("state=")[1].split("&")[0]
    redirect = f"http://127.0.0.1:8888/callback?code=the-code&state={state}"
    agent.step(Request(Message(TOPICS.request("auth"), redirect.encode()), clock.monotonic()))
    assert spotify.codes == ["the-code"]
    assert publisher.last(TOPICS.response("auth")).json()["status"] == "ok"
    assert agent.state == State.OK
    assert alerts(publisher)[-1] == "recovered"


@pytest.mark.parametrize(
    "pasted",
    [b"http://127.0.0.1:8888/callback?code=c&state=wrong", b"\xff\xfe", b"x" * 10_000],
    ids=["stale-state", "binary", "huge"],
)
def test_a_wrong_pasted_login_is_an_error_event(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    pasted: bytes,
) -> None:
    revoke(agent, clock, spotify)
    agent.step(Request(Message(TOPICS.request("auth"), pasted), clock.monotonic()))
    assert publisher.last(TOPICS.response("auth")).json()["status"] == "error"
    assert alerts(publisher)[-1] == "auth_failed"
    assert spotify.codes == []
    assert agent.state == State.AUTH_REQUIRED


def test_with_a_client_secret_an_app_token_is_served_while_degraded(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    cipher: TokenCipher,
) -> None:
    spotify.confidential = True
    revoke(agent, clock, spotify)
    assert agent.state == State.DEGRADED
    app = cipher.decrypt_json(publisher.last(TOPICS.token_app).payload)
    assert app["kind"] == "app" and app["access_token"] == "app-1"
    assert health(publisher)["instructions"]  # a person must still act
    clock.advance(3600 - 600)  # the app token is kept fresh
    agent.step()
    assert spotify.app_calls == 2


def test_the_backup_refresh_token_is_tried_once(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    store: TokenStore,
    tokens: Tokens,
    cipher: TokenCipher,
) -> None:
    # the main file holds a login whose refresh token Spotify refuses; the backup differs
    from mqtt_tokend.adapters.store import BACKUP_FILE, write_json

    other = replace(tokens, refresh_token="backup-rt")
    write_json(
        store.path(BACKUP_FILE), {"version": 1, "tokens": cipher.encrypt_json({**other.__dict__})}
    )
    spotify.failures = [AuthRejected("revoked")]
    clock.advance(2400)
    agent.step()
    assert spotify.refresh_calls == ["refresh-0", "backup-rt"]
    assert agent.state == State.OK


def test_reauth_by_is_published_and_reminders_come_14_and_3_days_before(
    agent: Agent,
    clock: FakeClock,
    publisher: FakePublisher,
    tokens: Tokens,
) -> None:
    reauth_by = tokens.authorized_at + 180 * 86400
    assert health(publisher)["reauth_by"] == pytest.approx(reauth_by)
    day = 86400.0
    clock.advance(reauth_by - 15 * day - clock.wall())
    agent.step()
    assert "reauth_soon" not in alerts(publisher)
    clock.advance(1.5 * day)
    agent.step()
    assert alerts(publisher) == ["reauth_soon"]
    clock.advance(day)
    agent.step()
    assert alerts(publisher) == ["reauth_soon"]
    clock.advance(10 * day)
    agent.step()
    assert alerts(publisher) == ["reauth_soon", "reauth_soon"]


def test_a_wall_clock_jump_re_evaluates_the_expiry_of_our_own_token(
    agent: Agent,
    clock: FakeClock,
    cipher: TokenCipher,
    publisher: FakePublisher,
) -> None:
    agent.step(request(clock, "refresh"))  # a token obtained by this process
    expires = cipher.decrypt_json(publisher.last(TOPICS.token).payload)["expires_at"]
    clock.jump_wall(5 * 3600)  # NTP corrects a Pi that booted five hours behind
    agent.step()
    moved = cipher.decrypt_json(publisher.last(TOPICS.token).payload)["expires_at"]
    assert moved == pytest.approx(expires + 5 * 3600, abs=1)
    assert agent.state == State.OK


def test_a_wall_clock_jump_makes_a_loaded_token_be_checked_with_spotify(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
) -> None:
    calls = spotify.me_calls
    clock.jump_wall(-3600)
    agent.step()
    assert spotify.me_calls == calls + 1


def test_devices_and_player_are_reported(
    agent: Agent,
    publisher: FakePublisher,
) -> None:
    devices = publisher.last(TOPICS.devices).json()
    assert devices["devices"][0]["name"] == "LoFi Pi"


def test_a_rotated_key_file_republishes_with_the_new_key(
    agent: Agent,
    clock: FakeClock,
    config: Config,
    publisher: FakePublisher,
) -> None:
    new_key = generate_key()
    config.agent.key_file.write_bytes(new_key + b"\n")
    config.agent.key_file.chmod(0o600)
    agent.step()
    token = publisher.last(TOPICS.token).payload
    assert TokenCipher([new_key]).decrypt_json(token)["access_token"] == "access-0"


# ---- Home Assistant (issue 5) -------------------------------------------------------------


def discovery(publisher: FakePublisher) -> list[str]:
    return [m.topic for m in publisher.messages if m.topic.startswith("homeassistant/")]


def test_discovery_is_published_on_connect_and_on_home_assistants_birth(
    agent: Agent, clock: FakeClock, publisher: FakePublisher
) -> None:
    first = discovery(publisher)
    assert first and all(t.endswith("/config") for t in first)
    assert all(m.retain and m.payload for m in publisher.messages if m.topic in first)
    payloads = [m.payload.decode() for m in publisher.messages if m.topic in first]
    assert not any(f'"{TOPICS.token}"' in p or TOPICS.token_app in p for p in payloads)
    publisher.messages.clear()
    birth = Message(topic="homeassistant/status", payload=b"online")
    agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)
    assert publisher.last(TOPICS.availability).payload == b"online"
    publisher.messages.clear()
    agent.step(Request(Message("homeassistant/status", b"offline"), clock.monotonic()))
    assert discovery(publisher) == []


@pytest.fixture
def ha_disabled(config: Config) -> Config:
    return replace(config, homeassistant=HomeAssistantConfig(enabled=False))


def test_with_discovery_disabled_the_device_is_removed_once(
    ha_disabled: Config,
    store: TokenStore,
    spotify: FakeSpotify,
    cipher: TokenCipher,
    publisher: FakePublisher,
    clock: FakeClock,
) -> None:
    agent = running_agent(
        config=ha_disabled,
        store=store,
        spotify=spotify,
        cipher=cipher,
        publisher=publisher,
        clock=clock,
    )
    removed = [m for m in publisher.messages if m.topic.startswith("homeassistant/")]
    assert removed and all(m.payload == b"" and m.retain for m in removed)
    publisher.messages.clear()
    agent.step(Connected())
    assert discovery(publisher) == []


def test_births_within_a_few_seconds_publish_discovery_once(
    agent: Agent, clock: FakeClock, publisher: FakePublisher
) -> None:
    first = discovery(publisher)
    publisher.messages.clear()
    birth = Message(topic="homeassistant/status", payload=b"online")
    for _ in range(1000):
        agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)  # once, not 1,000 times
    assert len(publisher.messages) < 2 * len(first)
    publisher.messages.clear()
    clock.advance(BIRTH_COALESCE)
    agent.step(Request(message=birth, received=clock.monotonic()))
    assert sorted(discovery(publisher)) == sorted(first)


def test_the_login_url_is_on_the_login_topic_only(
    agent: Agent,
    clock: FakeClock,
    spotify: FakeSpotify,
    publisher: FakePublisher,
    config: Config,
) -> None:
    revoke(agent, clock, spotify)
    url = publisher.last(TOPICS.login).payload.decode()
    state = url.split("state=")[1].split("&")[0]
    login_message = publisher.last(TOPICS.login)
    assert login_message.retain
    elsewhere = [m for m in publisher.messages if m is not login_message]
    assert not any(state.encode() in m.payload for m in elsewhere)
    status = config.agent.state_dir / "auto_token_status.json"
    assert state not in status.read_text()
    assert status.stat().st_mode & 0o777 == 0o640
    notice = config.agent.state_dir / "auth_failure_notice.txt"
    assert state not in notice.read_text()
