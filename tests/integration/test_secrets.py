"""A full scenario with known secrets, then every file and every output searched for them.

Login, refreshes, a revoked login served by the app token, re-login, the monitor, a stop:
no token, authorization code, client secret or key may appear in plaintext anywhere but
where it is meant to be (the config holds the client secret, the key file the key, and
`get-token` prints the access token: that is its job).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)
from tests.integration.conftest import AgentProcess, cli, login
from tests.integration.helpers import mosquitto_pub
from tests.integration.watch import Seen, Watcher

pytestmark = pytest.mark.integration

MEANT_TO_HOLD_SECRETS = {"config.toml", "fernet.key"}


def state_is(*states: str):  # type: ignore[no-untyped-def]
    return lambda m: bool(m.payload) and m.json()["state"] in states


@pytest.fixture
def token_lifetime() -> float:
    return 4.0


def test_no_secret_leaks_anywhere(
    config_file: Path,
    broker: PrivateMosquitto,
    base_topic: str,
    watcher: Watcher,
    emulator: SpotifyEmulator,
) -> None:
    text = config_file.read_text().replace(
        "[spotify]\n", f'[spotify]\nclient_secret = "{DEMO_CLIENT_SECRET}"\n', 1
    )
    start = text.index("client_id = ")
    text = (
        text[:start]
        + f'client_id = "{DEMO_CONFIDENTIAL_CLIENT_ID}"'
        + text[text.index("\n", start) :]
    )
    config_file.write_text(text)
    config_file.chmod(0o600)
    topics = Topics(base_topic)
    outputs: list[str] = []

    first = login(config_file)
    assert first.returncode == 0, first.stderr
    outputs += [first.stderr]  # its stdout is the authorization URL, which holds no secret
    agent = AgentProcess(config_file).start()
    try:
        watcher.wait_for(topics.health, state_is("ok"))
        for command in (["status"], ["status", "--json"], ["check"], ["refresh"], ["health-check"]):
            result = cli(config_file, "--log-level", "DEBUG", *command)
            outputs += [result.stdout, result.stderr]
        token = cli(config_file, "get-token")
        outputs.append(token.stderr)
        emulator.revoke_all()
        mosquitto_pub(broker, topics.request("refresh"))
        watcher.wait_for(topics.health, state_is("degraded"), timeout=15)
        again = login(config_file)
        assert again.returncode == 0, again.stderr
        outputs.append(again.stderr)
        watcher.wait_for(topics.health, state_is("ok"), after=watcher.messages[-1].at, timeout=15)
        assert agent.signal(signal.SIGTERM) == 0
    finally:
        agent.stop()

    secrets = [*emulator.issued_secrets(), DEMO_CLIENT_SECRET]
    secrets += (config_file.parent / "fernet.key").read_text().split()
    assert len(secrets) >= 8  # two codes, two refresh tokens, access and app tokens, secret, key
    files = [
        p
        for p in config_file.parent.rglob("*")
        if p.is_file() and p.name not in MEANT_TO_HOLD_SECRETS
    ]
    assert any(p.name == "auto_token.log" for p in files)
    assert any(p.name == "token_health.log" for p in files)
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"a secret is in {path}"
    for output in outputs:
        for secret in secrets:
            assert secret not in output, f"a secret is in the output: {output[:200]}"
    for message in watcher.messages:
        for secret in secrets:
            assert secret.encode() not in message.payload, f"a secret is on {message.topic}"
    assert_not_plain(watcher.on(topics.token))


def assert_not_plain(tokens: list[Seen]) -> None:
    """Tokens on the broker are Fernet ciphertext, never JSON."""
    assert tokens
    for message in tokens:
        assert not message.payload or message.payload.startswith(b"gAAAAA")
