"""The topic table of the package, the agent's publishes and the README against `topics/`."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from types import ModuleType

import pytest
from jsonschema import Draft7Validator

from mqtt_tokend.adapters import mqtt
from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import AgentConfig, Config, HomeAssistantConfig, MqttConfig, SpotifyConfig
from mqtt_tokend.contract.health import Health, State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.topics import REQUEST_VERBS, Topics
from mqtt_tokend.contract.wire import (
    NotRefreshed,
    RefreshOutcome,
    rejected_request,
    response_payload,
    token_plaintext,
    token_sha256,
)
from mqtt_tokend.contract.wording import auth_instructions
from mqtt_tokend.daemon.devices import DeviceWatch
from mqtt_tokend.daemon.inbox import Request
from tests.contract import SCHEMAS, TOPICS_DIR, Contract
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, running_agent

BASE = "lofi/spotify"
TOPICS = Topics(BASE)
README = TOPICS_DIR.parent / "README.md"
NOT_TOPICS = {"verb_of"}  # parses a topic; returns none


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def package_topics() -> dict[str, str]:
    """Every topic the package's Topics names, as attribute(argument) -> topic."""
    found = {}
    for name, member in vars(Topics).items():
        if name.startswith("_") or name in NOT_TOPICS:
            continue
        if isinstance(member, property):
            value = getattr(TOPICS, name)
            if "+" not in value and "#" not in value:  # filters are checked on their own
                found[name] = value
        elif inspect.isfunction(member):
            assert list(inspect.signature(member).parameters) == ["self", "verb"], name
            for verb in sorted(REQUEST_VERBS):
                found[f"{name}({verb})"] = getattr(TOPICS, name)(verb)
    return found


# ---- the document ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_every_schema_file_is_a_valid_draft_7_schema(path: Path) -> None:
    schema = json.loads(path.read_text())
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["description"]


def test_every_schema_file_is_used_by_the_document() -> None:
    text = (TOPICS_DIR / "asyncapi.yaml").read_text()
    unused = [p.name for p in SCHEMAS.glob("*.json") if f"./schemas/{p.name}" not in text]
    assert not unused


def test_every_request_has_a_reply_on_its_response_channel(contract: Contract) -> None:
    operations = contract.document["operations"].values()
    replies = {
        op["channel"]["$ref"]: op["reply"]["channel"]["$ref"]
        for op in operations
        if op["action"] == "receive"
    }
    assert replies == {
        f"#/channels/{verb}Request": f"#/channels/{verb}Response" for verb in REQUEST_VERBS
    }


# ---- the package's topic table ----------------------------------------------------------------


def test_every_channel_is_a_topic_of_the_package_and_back(contract: Contract) -> None:
    documented = {channel.topic(BASE) for channel in contract.channels.values()}
    named = package_topics()
    assert set(named.values()) == documented, {
        "in the document only": documented - set(named.values()),
        "in mqtt_tokend/topics.py only": {k: v for k, v in named.items() if v not in documented},
    }


def test_the_request_filter_matches_exactly_the_request_channels(contract: Contract) -> None:
    prefix = TOPICS.requests.removesuffix("+")
    assert TOPICS.requests == f"{prefix}+"
    matched = {
        c.id
        for c in contract.channels.values()
        if c.topic(BASE).startswith(prefix) and "/" not in c.topic(BASE)[len(prefix) :]
    }
    assert matched == {c.id for c in contract.channels.values() if c.sender == "anyone"}


def test_the_mqtt_adapter_publishes_at_the_documented_qos(contract: Contract) -> None:
    assert {c.qos for c in contract.channels.values()} == {mqtt.QOS}


def test_verb_of_reads_every_documented_request(contract: Contract) -> None:
    for channel in contract.channels.values():
        verb = TOPICS.verb_of(channel.topic(BASE))
        assert (verb is not None) == (channel.sender == "anyone"), channel.id
        if verb is not None:
            assert TOPICS.request(verb) == channel.topic(BASE)


# ---- what the agent publishes -------------------------------------------------------------------


@pytest.fixture
def agent_run(tmp_path: Path, clock: FakeClock) -> tuple[FakePublisher, TokenCipher]:
    """An agent (fake Spotify, recording publisher) taken through connect, requests and stop."""
    config = Config(
        spotify=SpotifyConfig(client_id="client"),
        mqtt=MqttConfig(base_topic=BASE),
        agent=AgentConfig(state_dir=tmp_path / "state", key_file=tmp_path / "key"),
        homeassistant=HomeAssistantConfig(),
    )
    cipher = TokenCipher([generate_key()])
    store = TokenStore(config.agent.state_dir, cipher=cipher)
    now = clock.wall()
    store.save(
        Tokens(
            access_token="access-0",
            refresh_token="refresh-0",
            expires_at=now + 3000,
            scope="user-read-playback-state",
            issued_at=now - 600,
            authorized_at=now - 86400,
        )
    )
    publisher = FakePublisher()
    agent = running_agent(
        config=config,
        store=store,
        spotify=FakeSpotify(),
        cipher=cipher,
        publisher=publisher,
        clock=clock,
    )

    def ask(verb: str, body: object = None, raw: bytes = b"") -> None:
        payload = raw or (json.dumps(body).encode() if body is not None else b"")
        message = Message(topic=TOPICS.request(verb), payload=payload)
        agent.step(Request(message=message, received=clock.monotonic()))

    for verb in sorted(REQUEST_VERBS):
        ask(verb, {"transaction": verb})
    ask("refresh")
    clock.advance(60)
    ask("refresh", {"reason": "rejected", "token_sha256": token_sha256("access-1")})
    ask("status", raw=b"not json")
    clock.advance(4000)  # a scheduled refresh and a health check
    agent.step()
    for topic, payload in agent.final_messages():
        publisher.publish(topic, payload, retain=True)
    return publisher, cipher


def test_everything_the_agent_publishes_fits_the_contract(
    contract: Contract, agent_run: tuple[FakePublisher, TokenCipher]
) -> None:
    publisher, cipher = agent_run
    seen = set()
    for message in publisher.messages:
        topic = message.reply.topic if message.reply is not None else message.topic
        if not topic.startswith(f"{BASE}/"):
            continue  # Home Assistant discovery: its own contract, under its own prefix
        problems = contract.problems(
            BASE,
            topic,
            message.payload,
            retain=message.retain,
            expiry=message.expiry,
            decrypt=cipher.decrypt,
            mqtt5=True,
        )
        assert not problems
        seen.add(contract.channel_for(BASE, topic).id)  # type: ignore[union-attr]
    assert {"availability", "token", "health", "refreshResponse", "statusResponse"} <= seen


def test_retained_channels_are_the_ones_the_agent_retains(
    contract: Contract, agent_run: tuple[FakePublisher, TokenCipher]
) -> None:
    publisher, _ = agent_run
    ours = [m for m in publisher.messages if m.topic.startswith(f"{BASE}/")]
    documented = {c.topic(BASE) for c in contract.channels.values() if c.retain}
    assert {m.topic for m in ours if m.retain} <= documented
    assert {m.topic for m in ours if not m.retain}.isdisjoint(documented)


# ---- payload shapes ---------------------------------------------------------------------------


def schema(name: str) -> Draft7Validator:
    return Draft7Validator(json.loads((SCHEMAS / name).read_text()))


@pytest.mark.parametrize("kind", ["user", "app"])
def test_the_token_plaintext_of_the_package_fits(kind: str) -> None:
    plain = token_plaintext(
        access_token="abc", scope="", expires_at=2e9, issued_at=2e9 - 3600, kind=kind
    )
    assert not list(schema("token-plaintext.json").iter_errors(plain))


def test_a_token_plaintext_with_an_unknown_kind_is_refused() -> None:
    plain = token_plaintext(access_token="a", scope="", expires_at=2.0, issued_at=1.0, kind="bot")
    assert list(schema("token-plaintext.json").iter_errors(plain))


@pytest.mark.parametrize("state", list(State), ids=str)
def test_every_health_state_fits(state: State) -> None:
    human = state == State.AUTH_REQUIRED
    health = Health(
        state=state,
        message="m",
        checked_at=2e9,
        instructions=auth_instructions(None) if human else None,
    )
    assert not list(schema("health.json").iter_errors(health.to_payload()))


def test_auth_required_without_instructions_is_refused() -> None:
    payload = Health(state=State.AUTH_REQUIRED, message="m", checked_at=2e9).to_payload()
    assert list(schema("health.json").iter_errors(payload))


PLAYERS = [
    None,
    {"reachable": True, "active_user": True, "name": "LoFi Pi"},
    {"reachable": False, "active_user": None, "error": "connection refused"},
]


@pytest.mark.parametrize("player", PLAYERS, ids=["none", "reachable", "unreachable"])
def test_health_lists_exactly_the_fields_records_carry(player: dict[str, object] | None) -> None:
    payload = Health(
        state=State.OK, message="m", checked_at=2e9, reauth_by=2e9 + 86400, player=player
    ).to_payload()
    health = json.loads((SCHEMAS / "health.json").read_text())
    assert list(health["properties"]) == list(payload) == health["required"]
    assert not list(schema("health.json").iter_errors(payload))
    assert list(schema("health.json").iter_errors(payload | {"something_new": 1}))
    del payload["reauth_by"]
    assert list(schema("health.json").iter_errors(payload))


def test_the_refresh_data_is_the_health_record_and_the_outcome() -> None:
    """refresh-data.json names every health field by reference, so the two cannot drift."""
    health = json.loads((SCHEMAS / "health.json").read_text())
    data = json.loads((SCHEMAS / "refresh-data.json").read_text())
    outcome = ["refreshed", "reason", "next_allowed_at"]
    assert list(data["properties"]) == outcome + list(health["properties"])
    assert data["required"] == ["refreshed", *health["required"]]
    for name in health["properties"]:
        assert data["properties"][name] == {"$ref": f"./health.json#/properties/{name}"}
    assert data["properties"]["reason"]["enum"] == [str(r) for r in NotRefreshed]


def refresh_data_problems(value: object) -> list[str]:
    validator = Contract.load().channels["refreshResponse"].messages[0].payload
    reply = {"status": "ok", "data": value}
    return [e.message for e in validator.iter_errors(reply)]


@pytest.mark.parametrize("reason", list(NotRefreshed), ids=str)
def test_every_reason_for_no_new_token_fits_the_refresh_reply(reason: NotRefreshed) -> None:
    health = Health(state=State.OK, message="m", checked_at=2e9).to_payload()
    outcome = RefreshOutcome(refreshed=False, reason=reason, next_allowed_at=2e9 + 30)
    data = outcome.data(health)
    assert data["reason"] == reason and data["next_allowed_at"] == 2e9 + 30
    assert not refresh_data_problems(data)
    assert refresh_data_problems(data | {"reason": "because"})
    assert refresh_data_problems({k: v for k, v in data.items() if k != "next_allowed_at"})


def test_a_new_token_reply_carries_no_reason() -> None:
    health = Health(state=State.OK, message="m", checked_at=2e9).to_payload()
    data = RefreshOutcome(refreshed=True).data(health)
    assert "reason" not in data and not refresh_data_problems(data)
    assert refresh_data_problems(data | {"reason": "rate_limited", "next_allowed_at": 1.0})


def test_health_never_carries_the_login_url() -> None:
    """The URL holds the login's state: it is on `<base>/login` only, never in health."""
    payload = Health(state=State.OK, message="m", checked_at=2e9, login_topic="b/login")
    record = payload.to_payload()
    assert record["login_pending"] is True and record["login_topic"] == "b/login"
    assert not list(schema("health.json").iter_errors(record))
    record["auth_url"] = "http://127.0.0.1:8888/?state=s"
    assert list(schema("health.json").iter_errors(record))


@pytest.mark.parametrize(
    ("ok", "error", "valid"),
    [(True, None, True), (False, "why", True), (False, None, False), (True, "why", False)],
    ids=["ok", "error", "error-without-text", "ok-with-error"],
)
def test_response_payloads(ok: bool, error: str | None, valid: bool) -> None:
    payload = response_payload(ok=ok, error=error, transaction=7)
    assert (not list(schema("response.json").iter_errors(payload))) == valid


def test_a_rejected_token_request_fits_the_request_schema() -> None:
    body = rejected_request("access-1", transaction="t")
    assert body == {
        "reason": "rejected",
        "token_sha256": token_sha256("access-1"),
        "transaction": "t",
    }
    assert not list(schema("request.json").iter_errors(body))
    assert not list(schema("request.json").iter_errors(""))
    assert list(schema("request.json").iter_errors({"token_sha256": "not hex"}))


# ---- the README -------------------------------------------------------------------------------


def render_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_table", TOPICS_DIR / "render_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_topic_table_is_the_rendered_one() -> None:
    module = render_table()
    table = module.render(module.load())
    text = README.read_text()
    section = text[text.index("## Topics") :]
    section = section[: section.index("\n## ", 1)]
    in_readme = [line for line in section.splitlines() if line.startswith("|")]
    assert in_readme == table.splitlines(), "run: python topics/render_table.py"


def test_health_with_a_retry_after_fits_the_schema() -> None:
    payload = Health(
        state=State.RETRYING, message="rate limited", checked_at=2e9, retry_after_until=2e9 + 60
    ).to_payload()
    assert not list(schema("health.json").iter_errors(payload))
    payload["retry_after_until"] = "in an hour"
    assert list(schema("health.json").iter_errors(payload))


@pytest.mark.parametrize(
    "answer",
    [{"activeUser": "u", "remoteName": "LoFi Pi"}, {"remoteName": 7}, {"remoteName": ["x"]}, {}],
    ids=["named", "number", "list", "empty"],
)
def test_whatever_the_player_answers_its_health_field_fits(answer: dict[str, object]) -> None:
    watch = DeviceWatch(spotify=FakeSpotify(player=answer), zeroconf_url="http://127.0.0.1:1/")
    watch.check_player()
    payload = Health(state=State.OK, message="m", checked_at=2e9, player=watch.player)
    assert not list(schema("health.json").iter_errors(payload.to_payload()))
