"""Consumers: decoding, expiry, the token held, rejection and key reloads (no broker)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key, rotate_key_file, write_key_file
from mqtt_tokend.config import AgentConfig, Config, HomeAssistantConfig, MqttConfig, SpotifyConfig
from mqtt_tokend.consumer import Token, TokenConsumer, decode_token, usable
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wire import TokenKind, token_plaintext, token_sha256
from mqtt_tokend.errors import BrokerError, CryptoError
from tests.fakes import FakeClock

BASE = "test/consumer"
TOPICS = Topics(BASE)


def sealed(
    cipher: TokenCipher, access: str, *, expires_at: float, lifetime: float = 3600.0
) -> bytes:
    plain = token_plaintext(
        access_token=access,
        scope="user-read-playback-state",
        expires_at=expires_at,
        issued_at=expires_at - lifetime,
        kind="user",
    )
    return cipher.encrypt_json(plain).encode()


# ---- decode_token and expiry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "lifetime", "valid"),
    [
        (3000.0, 3600.0, True),
        (5.5, 3600.0, True),
        (5.0, 3600.0, False),  # inside the 5 s margin
        (-1.0, 3600.0, False),
        (1.1, 4.0, True),  # a 4 s token: the margin is a quarter of its life
        (0.9, 4.0, False),
    ],
    ids=["fresh", "just-outside-margin", "inside-margin", "expired", "short-life", "short-late"],
)
def test_decode_token_judges_expiry_from_expires_at(
    cipher: TokenCipher, clock: FakeClock, left: float, lifetime: float, valid: bool
) -> None:
    payload = sealed(cipher, "a", expires_at=clock.wall() + left, lifetime=lifetime)
    token = decode_token(cipher, payload, now=clock.wall())
    assert (token is not None) == valid
    if token is not None:
        assert token.access_token == "a"


def test_a_cleared_payload_is_no_token(cipher: TokenCipher) -> None:
    assert decode_token(cipher, b"", now=0.0) is None


def test_a_payload_of_another_key_is_a_crypto_error(cipher: TokenCipher) -> None:
    other = TokenCipher([generate_key()])
    with pytest.raises(CryptoError, match="does not decrypt"):
        decode_token(cipher, sealed(other, "a", expires_at=2e9), now=0.0)


def test_a_payload_that_is_not_a_token_is_a_crypto_error(cipher: TokenCipher) -> None:
    with pytest.raises(CryptoError, match="not a token"):
        decode_token(cipher, cipher.encrypt_json({"hello": 1}).encode(), now=0.0)


def test_usable_without_issued_at_only_needs_expires_at_in_the_future() -> None:
    assert usable(100.0, None, now=99.9)
    assert not usable(100.0, None, now=100.0)


def test_token_object_from_plaintext() -> None:
    plain = token_plaintext(
        access_token="zq9", scope="s", expires_at=200, issued_at=100, kind="app"
    )
    token = Token.from_plaintext(plain)
    assert (token.expires_at, token.issued_at, token.kind, token.scope) == (200, 100, "app", "s")
    assert token.authorization == "Bearer zq9"
    assert token.sha256 == token_sha256("zq9")
    assert "zq9" not in repr(token)
    with pytest.raises(CryptoError):
        Token.from_plaintext({"access_token": "", "expires_at": 1})


# ---- TokenConsumer without a broker -------------------------------------------------------------


class Changes(list[Token]):
    def __call__(self, token: Token) -> None:
        self.append(token)


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def consumer(cipher: TokenCipher, clock: FakeClock, changes: Changes) -> TokenConsumer:
    return TokenConsumer(base_topic=BASE, cipher=cipher, clock=clock.wall, on_change=changes)


def deliver(consumer: TokenConsumer, payload: bytes, topic: str = TOPICS.token) -> None:
    consumer.receive(Message(topic=topic, payload=payload, retain=True))


def test_keywords_override_the_config() -> None:
    config = Config(
        spotify=SpotifyConfig(client_id="c"),
        mqtt=MqttConfig(host="pi", port=1884, base_topic="a/b", username="u", password="p"),
        agent=AgentConfig(key_file=Path("/k")),
        homeassistant=HomeAssistantConfig(),
    )
    consumer = TokenConsumer(config, port=8883, tls=True, ca_file="/ca.pem", app=True)
    assert (consumer.mqtt.host, consumer.mqtt.port, consumer.mqtt.tls) == ("pi", 8883, True)
    assert consumer.mqtt.ca_file == Path("/ca.pem") and consumer.mqtt.username == "u"
    assert consumer.topic == "a/b/token/app"
    assert TokenConsumer(protocol=3).mqtt.protocol == 3
    assert TokenConsumer().topic == "lofi/spotify/token"


def test_a_new_token_is_held_and_announced_once(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock, changes: Changes
) -> None:
    payload = sealed(cipher, "a", expires_at=clock.wall() + 3000)
    deliver(consumer, payload)
    deliver(consumer, payload)  # the retained copy again, after a reconnect
    deliver(consumer, sealed(cipher, "a", expires_at=clock.wall() + 3000))  # re-encrypted
    assert [t.access_token for t in changes] == ["a"]
    current = consumer.current()
    assert current is not None and current.access_token == "a"
    deliver(consumer, sealed(cipher, "b", expires_at=clock.wall() + 3600))
    assert [t.access_token for t in changes] == ["a", "b"]


def test_an_expired_token_is_not_handed_out(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock, changes: Changes
) -> None:
    deliver(consumer, sealed(cipher, "old", expires_at=clock.wall() - 10))  # MQTT 3.1.1 keeps it
    assert consumer.current() is None and not changes
    deliver(consumer, sealed(cipher, "a", expires_at=clock.wall() + 100))
    assert consumer.current() is not None
    clock.advance(96)
    assert consumer.current() is None


def test_a_cleared_topic_drops_the_token(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock
) -> None:
    deliver(consumer, sealed(cipher, "a", expires_at=clock.wall() + 3000))
    deliver(consumer, b"")
    assert consumer.current() is None


def test_other_topics_are_ignored(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock
) -> None:
    deliver(consumer, sealed(cipher, "app", expires_at=clock.wall() + 3000), TOPICS.token_app)
    assert consumer.current() is None


def test_a_rejected_token_is_not_handed_out_again(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock, changes: Changes
) -> None:
    deliver(consumer, sealed(cipher, "a", expires_at=clock.wall() + 3000))
    assert consumer.report_rejected() is False  # not connected: nothing was sent
    assert consumer.current() is None
    deliver(consumer, sealed(cipher, "a", expires_at=clock.wall() + 3000))  # the agent's copy
    assert consumer.current() is None
    deliver(consumer, sealed(cipher, "b", expires_at=clock.wall() + 3600))
    current = consumer.current()
    assert current is not None and current.access_token == "b"
    assert [t.access_token for t in changes] == ["a", "b"]


def test_the_reason_for_no_token_names_the_broker_or_the_key(
    consumer: TokenConsumer, cipher: TokenCipher, clock: FakeClock
) -> None:
    consumer._link = None  # never started (token() would connect): judge the reason alone
    error = consumer._why_none(0.1)
    assert isinstance(error, BrokerError) and "cannot use the MQTT broker" in str(error)
    deliver(consumer, sealed(TokenCipher([generate_key()]), "x", expires_at=2e9))
    error = consumer._why_none(0.1)
    assert isinstance(error, CryptoError) and "does not decrypt" in str(error)


def test_the_key_file_is_read_again_after_a_rotation(tmp_path: Path, clock: FakeClock) -> None:
    key_file = tmp_path / "fernet.key"
    write_key_file(key_file)
    consumer = TokenConsumer(base_topic=BASE, key_file=key_file, clock=clock.wall)
    old = TokenCipher.from_file(key_file)
    deliver(consumer, sealed(old, "a", expires_at=clock.wall() + 3000))
    rotate_key_file(key_file)
    new = TokenCipher.from_file(key_file)
    deliver(consumer, sealed(new, "b", expires_at=clock.wall() + 3000))
    current = consumer.current()
    assert current is not None and current.access_token == "b"
    deliver(consumer, sealed(old, "c", expires_at=clock.wall() + 3000))  # old keys still work
    assert consumer.current().access_token == "c"  # type: ignore[union-attr]


def test_an_app_consumer_takes_the_app_topic(cipher: TokenCipher, clock: FakeClock) -> None:
    consumer = TokenConsumer(base_topic=BASE, cipher=cipher, clock=clock.wall, app=True)
    plain = token_plaintext(
        access_token="app",
        scope="",
        expires_at=clock.wall() + 3000,
        issued_at=clock.wall(),
        kind=TokenKind.APP,
    )
    deliver(consumer, cipher.encrypt_json(plain).encode(), TOPICS.token_app)
    current = consumer.current()
    assert current is not None and current.kind == "app"


def test_importing_the_consumer_leaves_requests_out() -> None:
    code = (
        "import sys, mqtt_tokend.consumer\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3'))\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == ""


def test_the_readme_example_is_short_and_uses_the_real_api() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text()
    block = text[text.index("```python\n", text.index("## Recipes")) + len("```python\n") :]
    block = block[: block.index("```")]
    assert len(block.splitlines()) <= 20
    tree = ast.parse(block)
    made = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TokenConsumer"
    ]
    accepted = inspect.signature(TokenConsumer).parameters
    assert made and all(k.arg in accepted for call in made for k in call.keywords)
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    for name in ("start", "token", "report_rejected"):
        assert name in used and callable(getattr(TokenConsumer, name))
    on_token = {f.name for f in fields(Token)} | {
        name for name, value in vars(Token).items() if isinstance(value, property)
    }
    assert {"authorization", "expires_at"} <= used & on_token


def test_the_package_exports_the_consumer_api_lazily() -> None:
    code = (
        "import sys, mqtt_tokend\n"
        "heavy = ('paho', 'cryptography', 'requests', 'mqtt_tokend.consumer')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from mqtt_tokend import Token, TokenConsumer, TokendError, fetch_token\n"
        "import mqtt_tokend.consumer as c, mqtt_tokend.errors as e\n"
        "print(TokenConsumer is c.TokenConsumer and fetch_token is c.fetch_token"
        " and Token is c.Token and TokendError is e.TokendError)\n"
        "print(sorted(mqtt_tokend.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "[]",
        "True",
        "['Token', 'TokenConsumer', 'TokendError', 'fetch_token']",
    ]
