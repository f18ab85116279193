"""A staged install whose broker really runs: `setup_auto_tokens.sh --root DIR` with the
Mosquitto of DIR started on a free port (staged_broker.py), and the agent's config pointed at
that broker and at the files inside DIR, so the installed commands can run for real."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from tests.deploy.conftest import Peer

BASE = "lofi/spotify"
NODE = "lofi_spotify"
# Everything the agent leaves retained (README's topic table), and a few of its discovery
# configs: enough that a purge which forgets any kind of them fails.
AGENT_RETAINED = ("token", "token/app", "health", "availability", "devices", "login")


def rebase_config(config: Path, root: Path, port: int) -> None:
    """The staged config.toml names host paths (/etc/mqtt-tokend/...) and port 1883: point it at
    the files under `root` and at the staged broker."""
    text = config.read_text()
    text, count = re.subn(r"(?m)^port = 1883\b", f"port = {port}", text)
    assert count == 1, "the installed config names the broker's port once"
    for host_dir in ("/etc/mqtt-tokend", "/var/lib/mqtt-tokend"):
        text = text.replace(f'"{host_dir}', f'"{root}{host_dir}')
    for key, value in (
        ("state_dir", "/var/lib/mqtt-tokend"),
        ("key_file", "/etc/mqtt-tokend/fernet.key"),
    ):
        if not re.search(rf"(?m)^{key} = ", text):
            text = text.replace("[agent]\n", f'[agent]\n{key} = "{root}{value}"\n', 1)
    config.write_text(text)


def connected(port: int, username: str | None, password: str | None = None) -> Peer:
    """A client that is connected (or the test fails)."""
    peer = Peer(port, username, password)
    code = peer.connect()
    assert not code.is_failure, f"{username} could not connect: {code}"  # type: ignore[attr-defined]
    return peer


def leave_agent_traces(port: int, agent_password: str, discovery: list[str]) -> None:
    """What a running agent leaves on the broker: its retained topics and discovery configs."""
    agent = connected(port, "mqtt-tokend", agent_password)
    try:
        for topic in AGENT_RETAINED:
            agent.publish(f"{BASE}/{topic}", b"left by the agent", retain=True)
        for topic in discovery:
            agent.publish(topic, b'{"name": "left by the agent"}', retain=True)
    finally:
        agent.close()


def retained(peer: Peer, pattern: str, barrier: str = "barrier") -> dict[str, bytes]:
    """The retained messages `peer` may read under `pattern`; its own message on `barrier` (a
    topic it may write and read; a unique suffix is added), routed back to it, is the barrier
    behind them."""
    barrier = f"{barrier}/{uuid.uuid4().hex}" if barrier != "homeassistant/status" else barrier
    peer.subscribe(pattern, barrier)
    peer.publish(barrier, b"barrier")
    peer.wait_for(barrier, b"barrier")
    return {t: p for t, p, r in peer.messages if r and p and t != barrier}


def agent_traces(messages: dict[str, bytes]) -> list[str]:
    """The topics among `messages` that are the agent's (its tree or its discovery configs)."""
    return sorted(
        t for t in messages if t.startswith(f"{BASE}/") or re.match(rf"[^/]+/[^/]+/{NODE}/", t)
    )
