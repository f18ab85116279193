"""`mqtt-tokend rotate-key` with a running agent and consumers that must not lose the token."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from mqtt_tokend.adapters.crypto import TokenCipher, read_key_file
from mqtt_tokend.adapters.store import read_status
from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.checker import KeyRing
from tests.integration.conftest import AgentProcess, cli
from tests.integration.helpers import Changes, healthy, me_status
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration


def with_key_file(config: Path, key_file: Path) -> Path:
    """A copy of the config that reads another key file."""
    variant = config.with_name(f"config-{key_file.stem}.toml")
    variant.write_text(
        config.read_text().replace('key_file = "fernet.key"', f'key_file = "{key_file}"')
    )
    return variant


def test_consumers_keep_every_token_across_a_key_rotation(
    agent: AgentProcess,
    watcher: Watcher,
    broker: PrivateMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
) -> None:
    topics = Topics(base_topic)
    key_file = agent.config.parent / "fernet.key"
    watcher.wait_for(topics.health, healthy)
    shared_changes = Changes()
    with TokenConsumer(  # reads the agent's key file, as consumers on the Pi do
        host=broker.host,
        port=broker.port,
        base_topic=base_topic,
        key_file=key_file,
        on_change=shared_changes,
    ) as shared:
        first = shared.token(timeout=10)
        old_keys = read_key_file(key_file)

        rotated = cli(agent.config, "rotate-key")
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert "re-published the token with the new key" in rotated.stdout
        new_keys = read_key_file(key_file)
        assert new_keys[1:] == old_keys and len(new_keys) == 2
        assert key_file.stat().st_mode & 0o777 == 0o600

        both_keys = agent.config.parent / "both.key"
        shutil.copy(key_file, both_keys)  # a consumer elsewhere, given the new file
        both_changes = Changes()
        with TokenConsumer(
            host=broker.host,
            port=broker.port,
            base_topic=base_topic,
            cipher=TokenCipher.from_file(both_keys),
            on_change=both_changes,
        ) as both:
            assert both.token(timeout=10).access_token == first.access_token
            assert shared.token(timeout=1).access_token == first.access_token
            assert cli(agent.config, "refresh").returncode == 0
            for changes in (shared_changes, both_changes):
                wait_until(
                    lambda c=changes: len(c.access_tokens()) == 2,
                    timeout=10,
                    what="the refreshed token",
                )
            second = shared.token(timeout=5)
            assert second.access_token != first.access_token
            assert both.token(timeout=5).access_token == second.access_token
            assert shared.last_error is None and both.last_error is None
    assert me_status(emulator, second.access_token) == 200
    cipher = TokenCipher.from_file(key_file)
    for message in watcher.on(topics.token):  # nothing on the broker a holder of both misses
        assert not message.payload or cipher.decrypt_json(message.payload)["access_token"]
    latest = watcher.on(topics.token)[-1]
    assert TokenCipher([new_keys[0]]).decrypt_json(latest.payload)["access_token"] == (
        second.access_token
    )


def test_a_consumer_with_only_a_retired_key_gets_a_clear_error(
    agent: AgentProcess, watcher: Watcher, base_topic: str, emulator: SpotifyEmulator
) -> None:
    watcher.wait_for(Topics(base_topic).health, healthy)
    key_file = agent.config.parent / "fernet.key"
    retired = agent.config.parent / "retired.key"
    shutil.copy(key_file, retired)  # keeps the mode: 0600
    assert cli(agent.config, "get-token").returncode == 0

    rotated = cli(agent.config, "rotate-key", "--keep", "1")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "re-published the token with the new key" in rotated.stdout
    assert len(read_key_file(key_file)) == 1

    stale = cli(with_key_file(agent.config, retired), "get-token", "--timeout", "3")
    assert stale.returncode == 1
    assert "does not decrypt with any key in" in stale.stderr and str(retired) in stale.stderr
    assert "rotated-out key" in stale.stderr
    assert "Traceback" not in stale.stderr
    current = cli(agent.config, "get-token")
    assert current.returncode == 0, current.stderr
    assert me_status(emulator, current.stdout.strip()) == 200


def test_rotate_key_without_an_agent_still_rotates_and_says_so(config_file: Path) -> None:
    before = read_key_file(config_file.parent / "fernet.key")
    result = cli(config_file, "rotate-key", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert "added a new primary key" in result.stdout
    assert "did not answer" in result.stderr and "at its next check" in result.stderr
    assert read_key_file(config_file.parent / "fernet.key")[1:] == before


def test_the_contract_checker_keeps_a_key_replaced_by_one_of_the_same_size_and_time(
    tmp_path: Path,
) -> None:
    """A new key file can match the old one's size, mtime and even inode: the ring still
    learns the new key and keeps the old one, so both tokens stay checkable at the end."""
    key_file = tmp_path / "fernet.key"
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    key_file.write_bytes(old_key + b"\n")
    stamp = key_file.stat().st_mtime_ns
    ring = KeyRing(key_file)
    ring.refresh()
    key_file.write_bytes(new_key + b"\n")  # what keygen leaves: one key, one size
    os.utime(key_file, ns=(stamp, stamp))  # and within one timestamp tick
    ring.refresh()

    for key in (old_key, new_key):
        assert ring.decrypt(Fernet(key).encrypt(b'{"a": 1}')) == b'{"a": 1}'


def test_rotate_key_keep_1_with_the_agent_stopped_keeps_the_login(logged_in: Path) -> None:
    """Issue 12, item 7: the stored tokens were left on the retired key and the login lost."""
    state = logged_in.parent / "state"
    result = cli(logged_in, "rotate-key", "--keep", "1", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert len(read_key_file(logged_in.parent / "fernet.key")) == 1
    agent = AgentProcess(logged_in).start()
    try:
        wait_until(
            lambda: (read_status(state) or {}).get("state") == "ok",
            timeout=20,
            what=f"the agent to start ok on the new key:\n{agent.output()}",
        )
        assert cli(logged_in, "get-token").returncode == 0
    finally:
        agent.stop()
