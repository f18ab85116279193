"""Fuzzing `<base>/request/<verb>`: any payload gets one clear answer and changes nothing else.

Requests go through `parse_request` alone and through the agent's real handling (the agent of
`tests/unit/test_agent.py`: fake Spotify, recording publisher, injected clock).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TOKENS_FILE, TokenStore
from mqtt_tokend.config import AgentConfig, Config, HomeAssistantConfig, MqttConfig, SpotifyConfig
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.tokens import Tokens
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wire import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_DEPTH,
    RequestError,
    parse_request,
    token_sha256,
)
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.answers import MAX_RESPONSE_TOPIC
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import AuthRejected
from tests.fakes import FakeClock, FakePublisher, FakeSpotify, Published, running_agent
from tests.fuzz.profiles import budget
from tests.fuzz.strategies import (
    deep_json,
    depths,
    dumps,
    finite_json,
    json_values,
    nested,
    strict_loads,
    text,
)

BASE = "fuzz/agent"
TOPICS = Topics(BASE)
CIPHER = TokenCipher([generate_key()])
MIN_REFRESH_INTERVAL = 30.0
CURRENT_SHA = token_sha256("access-0")  # the token every scenario starts with
SCENARIOS = ("ok", "auth-required", "logged-out")

# ---- what may arrive -------------------------------------------------------------------

# A topic level as a broker delivers it: any UTF-8 but the wildcards and NUL.
_LEVEL = st.characters(codec="utf-8", exclude_characters="+#\0")
KNOWN_VERBS = ["refresh", "check", "status", "auth"]
verbs = st.one_of(st.sampled_from(KNOWN_VERBS), st.text(_LEVEL, max_size=12))
response_topics = (
    st.none()
    | st.just("")
    | st.text(_LEVEL, min_size=1, max_size=30)
    | st.text(_LEVEL, min_size=1, max_size=30).map(TOPICS.response)
)
correlations = st.none() | st.binary(max_size=16)


reasons = st.sampled_from(["rejected", "requested", ""]) | text
hashes = st.sampled_from([CURRENT_SHA, "0" * 64, CURRENT_SHA.upper()]) | text
# Requests a client might send: each field of the right type.
transactions = text | st.integers() | finite_json
good_objects = st.fixed_dictionaries(
    {"transaction": transactions}, optional={"reason": reasons, "token_sha256": hashes}
) | st.fixed_dictionaries(
    {}, optional={"transaction": transactions, "reason": reasons, "token_sha256": hashes}
)
# Requests with the fields of any type, and unknown fields.
fields = st.fixed_dictionaries(
    {},
    optional={
        "transaction": json_values,
        "reason": reasons | json_values,
        "token_sha256": hashes | json_values,
    },
)
objects = st.builds(lambda extra, known: extra | known, st.dictionaries(text, json_values), fields)

garbage = st.one_of(
    st.sampled_from([b" \n", b"null", b"{}", b"[]", b'"x"', b"NaN", b'{"transaction": NaN}']),
    st.binary(max_size=64),
    json_values.map(dumps),
    objects.map(dumps),
    objects.map(lambda body: dumps(body)[:-1]),  # truncated
    st.integers(MAX_REQUEST_BYTES - 16, 3 * MAX_REQUEST_BYTES).map(
        lambda n: dumps({"transaction": "x" * n})
    ),
    depths.map(lambda depth: b'{"transaction": ' + nested(depth) + b"}"),
    deep_json,
)
payloads = st.one_of(st.just(b""), good_objects.map(dumps), garbage)

# ---- the agent -------------------------------------------------------------------------


@dataclass
class Rig:
    """An agent that has started and connected, and the fakes around it."""

    agent: Agent
    spotify: FakeSpotify
    publisher: FakePublisher
    clock: FakeClock
    store: TokenStore


@contextmanager
def rig(scenario: str) -> Iterator[Rig]:
    """ok: a valid login; auth-required: Spotify refused the login; logged-out: none stored."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = Config(
            spotify=SpotifyConfig(client_id="client"),
            mqtt=MqttConfig(base_topic=BASE),
            agent=AgentConfig(
                state_dir=root / "state",
                key_file=root / "key",
                min_refresh_interval=MIN_REFRESH_INTERVAL,
            ),
            homeassistant=HomeAssistantConfig(),
        )
        clock, spotify, publisher = FakeClock(), FakeSpotify(), FakePublisher()
        store = TokenStore(config.agent.state_dir, cipher=CIPHER)
        if scenario != "logged-out":
            now = clock.wall()
            expires_in = 3000.0 if scenario == "ok" else -10.0
            store.save(
                Tokens(
                    access_token="access-0",
                    refresh_token="refresh-0",
                    expires_at=now + expires_in,
                    scope="user-read-playback-state",
                    issued_at=now + expires_in - 3600,
                    authorized_at=now - 86400,
                )
            )
        if scenario == "auth-required":
            spotify.failures = [AuthRejected("revoked", description="Refresh token revoked")]
        agent = running_agent(
            config=config,
            store=store,
            spotify=spotify,
            cipher=CIPHER,
            publisher=publisher,
            clock=clock,
        )
        expected = {"ok": State.OK, "auth-required": State.AUTH_REQUIRED}
        assert agent.state == expected.get(scenario, State.AUTH_REQUIRED)
        yield Rig(agent, spotify, publisher, clock, store)


def request(
    rig: Rig,
    verb: str,
    payload: bytes,
    *,
    retain: bool = False,
    response_topic: str | None = None,
    correlation: bytes | None = None,
) -> Request:
    message = Message(
        topic=TOPICS.request(verb),
        payload=payload,
        retain=retain,
        response_topic=response_topic,
        correlation_data=correlation,
    )
    return Request(message=message, received=rig.clock.monotonic())


# ---- what must come back ---------------------------------------------------------------


def usable_body(payload: bytes) -> dict[str, Any] | None:
    """The request object the agent should act on, or None when it must refuse the payload."""
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    if not payload.strip():
        return {}
    try:
        body = strict_loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or depth(body) > MAX_REQUEST_DEPTH:
        return None
    if any(key in body and not isinstance(body[key], str) for key in ("reason", "token_sha256")):
        return None
    return body


def depth(value: Any) -> int:
    level, levels = [value], 0
    while level:
        levels += 1
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return levels


def responses(messages: list[Published]) -> list[Published]:
    return [m for m in messages if m.reply is not None]


def check_answer(answer: Published, req: Request) -> dict[str, Any]:
    """One well-formed response on the right topic, with the correlation data; its body."""
    message = req.message
    verb = TOPICS.verb_of(message.topic)
    assert verb is not None
    # Only one topic under <base>/response/ (for a pasted login: under response/auth, which
    # no player reads) is honoured; any other is refused on the verb's own reply topic.
    asked = message.response_topic or ""
    under = TOPICS.response("auth") if verb == "auth" else TOPICS.response("")
    honoured = (
        (asked == under or asked.startswith(under.rstrip("/") + "/"))
        and len(TOPICS.response("")) < len(asked) <= MAX_RESPONSE_TOPIC
        and not any(c in asked for c in "+#\0")
    )
    expected = message.response_topic if honoured else TOPICS.response(verb)
    assert answer.topic == expected
    assert not answer.retain
    assert answer.reply is not None
    assert answer.reply.correlation_data == message.correlation_data
    body = strict_loads(answer.payload)  # strict: NaN is not JSON, a JS client cannot read it
    assert isinstance(body, dict)
    assert body["status"] in ("ok", "error")
    assert isinstance(body["data"], dict)
    if body["status"] == "error":
        assert isinstance(body["error"], str)
        assert body["error"].strip()
    else:
        assert "error" not in body
    return body


def disk(rig: Rig) -> bytes:
    return rig.store.path(TOKENS_FILE).read_bytes() if rig.store.path(TOKENS_FILE).exists() else b""


# ---- the properties --------------------------------------------------------------------


@budget(150)
@given(payload=payloads)
def test_parse_request_returns_a_request_object_or_refuses_it_clearly(payload: bytes) -> None:
    try:
        body = parse_request(payload)
    except RequestError as err:
        assert str(err).strip()
        assert usable_body(payload) is None
        return
    assert body == usable_body(payload)
    json.dumps(body, allow_nan=False)  # whatever is accepted can be echoed as JSON


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("verb", [*KNOWN_VERBS, "random"])
@budget(12, io=True)
@given(
    random_verb=st.text(_LEVEL, max_size=12),
    payload=payloads,
    retain=st.sampled_from([False, False, False, True]),
    response_topic=response_topics,
    correlation=correlations,
)
def test_every_request_gets_one_clear_answer_and_only_a_refresh_changes_tokens(
    scenario: str,
    verb: str,
    random_verb: str,
    payload: bytes,
    retain: bool,
    response_topic: str | None,
    correlation: bytes | None,
) -> None:
    verb = random_verb if verb == "random" else verb
    with rig(scenario) as r:
        tokens, state, on_disk = r.agent.tokens, r.agent.state, disk(r)
        calls, seen = len(r.spotify.refresh_calls), len(r.publisher.messages)
        req = request(
            r, verb, payload, retain=retain, response_topic=response_topic, correlation=correlation
        )

        r.agent.step(req)

        answers = responses(r.publisher.messages[seen:])
        if retain:
            assert answers == []  # a retained command is stale: ignored
            assert (r.agent.tokens, r.agent.state, disk(r)) == (tokens, state, on_disk)
            return
        assert len(answers) == 1
        answer = check_answer(answers[0], req)
        assert len(r.spotify.refresh_calls) - calls <= 1
        body = usable_body(payload) if verb != "auth" else None
        if body is not None and body.get("transaction") is not None:
            assert answer["transaction"] == body["transaction"]
        else:
            assert "transaction" not in answer
        acted = (verb == "refresh" and body is not None) or (
            verb == "auth" and answer["status"] == "ok"
        )
        if not acted:
            assert r.agent.tokens is tokens
            assert r.agent.state == state
            assert disk(r) == on_disk
            assert len(r.spotify.refresh_calls) == calls


burst_payloads = st.one_of(
    st.just(b""),
    st.just(dumps({"reason": "rejected", "token_sha256": CURRENT_SHA})),
    objects.map(dumps),
    payloads,
)


@budget(40, io=True)
@given(
    burst=st.lists(
        st.tuples(
            # whole milliseconds: 1000.0 + 29.999999999999993 would round to the interval itself
            st.integers(0, int(MIN_REFRESH_INTERVAL * 1000) - 1).map(lambda ms: ms / 1000),
            st.just("refresh") | verbs,
            burst_payloads,
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_burst_within_min_refresh_interval_costs_at_most_one_spotify_call(
    burst: list[tuple[float, str, bytes, bool]],
) -> None:
    with rig("ok") as r:
        start, seen = r.clock.monotonic(), len(r.publisher.messages)
        for offset, verb, payload, retain in sorted(burst, key=lambda item: item[0]):
            r.clock.advance(start + offset - r.clock.monotonic())
            r.agent.step(request(r, verb, payload, retain=retain))
        assert len(r.spotify.refresh_calls) <= 1
        answers = responses(r.publisher.messages[seen:])
        assert len(answers) == sum(1 for *_, retain in burst if not retain)
