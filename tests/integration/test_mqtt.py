"""The MQTT side end to end: MQTT 3.1.1 and 5, request/response, expiry on the broker, bursts."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.config import MqttConfig, load_config
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess, cli
from tests.integration.helpers import healthy, me_status, mosquitto_pub
from tests.integration.watch import Seen, Watcher, wait_until

pytestmark = pytest.mark.integration

BURST = 1000


def plaintext(config: Path, message: Seen) -> dict[str, object]:
    return TokenCipher.from_file(config.parent / "fernet.key").decrypt_json(message.payload)


def retained_mqtt5(broker: PrivateMosquitto, topic: str) -> bytes | None:
    """The retained message a new MQTT 5 subscriber gets on `topic`, or None."""
    config = MqttConfig(host=broker.host, port=broker.port, protocol=5)
    with oneshot(config, timeout=5, purpose="test") as session:
        message = session.retained([topic], timeout=5).get(topic)
    return message.payload if message is not None and message.payload else None


# ---- MQTT 3.1.1 and 5 ---------------------------------------------------------------------------


@pytest.mark.parametrize("mqtt_protocol", [3, 5], ids=["mqtt3.1.1", "mqtt5"])
def test_login_run_get_token_and_forced_refresh(
    mqtt_protocol: int,
    agent: AgentProcess,
    watcher: Watcher,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    first = watcher.wait_for(topics.token)
    watcher.wait_for(topics.health, healthy)
    if mqtt_protocol == 5:
        assert first.expiry is not None and 3500 < first.expiry <= 3600
    else:
        assert first.expiry is None  # 3.1.1 has no expiry: consumers judge expires_at
    got = cli(agent.config, "get-token")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == plaintext(agent.config, first)["access_token"]
    assert me_status(emulator, got.stdout.strip()) == 200

    before = emulator.calls("refresh_token")
    sent = time.monotonic()
    refreshed = cli(agent.config, "refresh")  # request/response without a Response Topic on 3.1.1
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    assert refreshed.stdout.startswith("refreshed;")
    new = watcher.wait_for(topics.token, lambda m: m.payload != first.payload, after=sent)
    assert emulator.calls("refresh_token") == before + 1
    again = cli(agent.config, "get-token")
    assert again.stdout.strip() == plaintext(agent.config, new)["access_token"]
    assert again.stdout.strip() != got.stdout.strip()
    assert me_status(emulator, again.stdout.strip()) == 200
    status = json.loads(cli(agent.config, "status", "--json").stdout)
    assert status["online"] is True and status["health"]["state"] == "ok"


# ---- request/response with MQTT 5 properties ----------------------------------------------------


def run_rr(
    broker: PrivateMosquitto, request: str, response: str, *, wait: int = 10
) -> subprocess.CompletedProcess[str]:
    """`mosquitto_rr`: a request with an MQTT 5 Response Topic; waits `wait` s for the answer."""
    where = ["-h", broker.host, "-p", str(broker.port)]
    return subprocess.run(
        ["mosquitto_rr", *where, "-t", request, "-e", response, "-n", "-W", str(wait)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def mosquitto_rr(broker: PrivateMosquitto, request: str, response: str) -> dict[str, object]:
    result = run_rr(broker, request, response)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_mosquitto_rr_gets_the_status(
    agent: AgentProcess, watcher: Watcher, broker: PrivateMosquitto, base_topic: str
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    answer = mosquitto_rr(broker, topics.request("status"), topics.response("status"))
    assert answer["status"] == "ok"
    assert answer["data"]["state"] == "ok"  # type: ignore[index]


def test_a_response_topic_under_response_is_honoured(
    agent: AgentProcess, watcher: Watcher, broker: PrivateMosquitto, base_topic: str
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    sent = time.monotonic()
    mine = topics.response(f"status/{uuid.uuid4().hex[:8]}")
    answer = mosquitto_rr(broker, topics.request("status"), mine)
    assert answer["status"] == "ok"
    assert answer["data"]["state"] == "ok"  # type: ignore[index]
    # A second request without a Response Topic: its answer comes after any stray first one.
    mosquitto_pub(broker, topics.request("status"), "-m", '{"transaction": "probe"}')
    watcher.wait_for(
        topics.response("status"), lambda m: m.json().get("transaction") == "probe", after=sent
    )
    on_default = [m.json() for m in watcher.on(topics.response("status")) if m.at >= sent]
    assert [body.get("transaction") for body in on_default] == ["probe"]


def test_a_response_topic_elsewhere_is_refused_on_the_verbs_reply_topic(
    agent: AgentProcess, watcher: Watcher, broker: PrivateMosquitto, base_topic: str
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    sent = time.monotonic()
    elsewhere = "homeassistant/sensor/evil/config"
    result = run_rr(broker, topics.request("status"), elsewhere, wait=2)
    assert result.returncode != 0  # nothing came back on the token topic
    refusal = watcher.wait_for(topics.response("status"), after=sent).json()
    assert refusal["status"] == "error" and "Response Topic" in refusal["error"]


def test_correlation_data_comes_back(
    agent: AgentProcess, watcher: Watcher, base_topic: str
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    reply_to = topics.response(f"check/{uuid.uuid4().hex[:8]}")
    config = load_config(agent.config)
    with oneshot(config.mqtt, timeout=10, purpose="test") as session:
        session.subscribe([reply_to], timeout=5)
        session.publish(
            topics.request("check"), b"", response_topic=reply_to, correlation_data=b"\x00id-7"
        )
        answer = session.wait_for(reply_to, lambda _m: True, timeout=10)
    assert answer.correlation_data == b"\x00id-7"
    assert json.loads(answer.payload)["data"]["state"] == "ok"


# ---- expiry on the broker -----------------------------------------------------------------------


LIFETIME = 6.0  # short, so the test waits for the broker's expiry; long enough to outlive a kill


@pytest.mark.parametrize("token_lifetime", [LIFETIME], ids=["6s-tokens"])
def test_the_broker_drops_an_expired_token_when_the_agent_is_dead(
    agent: AgentProcess,
    watcher: Watcher,
    broker: PrivateMosquitto,
    base_topic: str,
) -> None:
    topics = Topics(base_topic)
    # Kill the agent just after a token with most of its life left: with so short a lifetime a
    # slow machine could otherwise let it expire, and the agent clear it, before the kill.
    watcher.wait_for(topics.token, lambda m: bool(m.payload) and (m.expiry or 0) > LIFETIME / 2)
    agent.kill9()  # nothing clears the retained token now
    watcher.wait_for(topics.availability, lambda m: m.payload == b"offline")  # the Last Will
    last = watcher.on(topics.token)[-1]
    assert last.payload, "the agent cleared its token before the kill: nothing to expire"
    expires_at = float(plaintext(agent.config, last)["expires_at"])  # type: ignore[arg-type]
    assert last.expiry is not None and last.expiry <= LIFETIME
    wait_until(
        lambda: retained_mqtt5(broker, topics.token) is None,
        timeout=LIFETIME + 10,
        what="the broker to drop the expired token",
    )
    assert time.time() >= expires_at - 1.0  # dropped by its expiry, not before
    assert retained_mqtt5(broker, topics.health) is not None  # other retained messages stay


# ---- a burst of refresh requests ---------------------------------------------------------------


def test_a_burst_of_1000_refresh_requests_costs_at_most_two_spotify_calls(
    agent: AgentProcess,
    watcher: Watcher,
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)
    before = emulator.calls("refresh_token")
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"burst-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.max_inflight_messages_set(BURST)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        started = time.monotonic()
        infos = [
            client.publish(topics.request("refresh"), json.dumps({"transaction": i}), qos=1)
            for i in range(BURST)
        ]
        for info in infos:
            info.wait_for_publish(10)
        sent_in = time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()

    def answered() -> bool:
        return len(watcher.on(topics.response("refresh"))) >= BURST

    wait_until(answered, timeout=30, what=f"{BURST} responses")
    answered_in = time.monotonic() - started
    calls = emulator.calls("refresh_token") - before
    print(
        f"\nburst: {BURST} refresh requests sent in {sent_in:.3f} s, all answered in "
        f"{answered_in:.3f} s, {calls} Spotify call(s)"
    )
    assert calls <= 2
    answers = watcher.on(topics.response("refresh"))
    assert {m.json()["transaction"] for m in answers} == set(range(BURST))
    assert all(m.json()["status"] == "ok" for m in answers)
