"""The agent's recovery and what people see: revocation and a new login, alerts and notices,
the backup refresh token, re-auth reminders and wall-clock jumps (issue 4)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import AuthRejected
from tests.fakes import FakeClock, FakePublisher, FakeSpotify
from tests.unit.agent.helpers import TOPICS, health, request, revoke

# ---- recovery, people, time (issue 4) ---------------------------------------------------


def alerts(publisher: FakePublisher) -> list[str]:
    return [m.json()["event"] for m in publisher.on(TOPICS.alert)]


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
