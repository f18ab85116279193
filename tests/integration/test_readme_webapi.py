"""The README's SpotifyClient and spotipy examples, run as written against a real agent (the
config path swapped for the test's, and spotipy pointed at the emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_tokend.config import load_config
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import AgentProcess

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"
KEY = 'key_file="/etc/mqtt-tokend/fernet.key",'


def examples() -> list[str]:
    """The Python blocks of the README's Web API section."""
    text = README.read_text()
    start = text.index("## Calling the Web API")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = section.split("```python\n")[1:]
    return [block[: block.index("```")] for block in blocks]


def on_test_broker(
    code: str, agent: AgentProcess, broker: PrivateMosquitto, extra: str = ""
) -> str:
    """The example with the test's key file, broker port and base topic, and `extra` keywords
    (the broker lets any user in; the example's user and password are passed as written)."""
    config = load_config(agent.config)
    assert code.count(KEY) == 1
    return code.replace(
        KEY,
        f'key_file="{config.agent.key_file}", port={broker.port}, '
        f'base_topic="{config.mqtt.base_topic}", {extra}',
    )


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOFI_PLAYER_MQTT_PASSWORD": "player-secret"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_the_readme_has_a_client_and_a_spotipy_example() -> None:
    client, with_spotipy = examples()
    assert KEY in client and KEY in with_spotipy
    assert "spotipy.Spotify(auth_manager=tokend)" in with_spotipy


def test_the_client_example_plays_and_then_names_the_fix(
    agent: AgentProcess, emulator: SpotifyEmulator, broker: PrivateMosquitto
) -> None:
    code = on_test_broker(examples()[0], agent, broker, f'api_url="{emulator.url}",')
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "playing Rainy Window"
    emulator.revoke_all()  # Spotify ends the login
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert f"mqtt-tokend --config {agent.config} auth" in done.stdout


def test_the_spotipy_example_plays(
    agent: AgentProcess, emulator: SpotifyEmulator, broker: PrivateMosquitto
) -> None:
    pytest.importorskip("spotipy")
    code = on_test_broker(examples()[1], agent, broker)
    first, rest = code.split("\n", 4)[:4], code.split("\n", 4)[4]
    code = (
        "\n".join(first)
        + "\n"
        + rest.replace("\nprint(", f"\nsp.prefix = {emulator.url + '/v1/'!r}\nprint(", 1)
    )
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert "'device': {" in done.stdout and "'is_playing':" in done.stdout
