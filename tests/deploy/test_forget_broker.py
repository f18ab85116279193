"""`setup_auto_tokens.sh --uninstall --purge` takes the agent's retained messages and its Home
Assistant device off the broker (deploy/forget_broker.py), on the shipped broker config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mqtt_tokend.contract.homeassistant import discovery_messages
from tests.deploy.conftest import DEPLOY, Broker, Peer, run_installer

BASE = "lofi/spotify"


def retained(peer: Peer, *topics: str) -> dict[str, bytes]:
    """The retained messages on `topics`: the peer's own acknowledged publish, routed back to
    it, is the barrier behind them."""
    peer.subscribe(*topics, f"{BASE}/request/refresh")
    peer.publish(f"{BASE}/request/refresh", b"barrier")
    return {t: p for t, p, r in peer.messages if r and p}


def test_purge_removes_the_retained_topics_and_the_home_assistant_device(
    broker: Broker, tmp_path: Path
) -> None:
    agent = Peer(broker.port, "mqtt-tokend", broker.passwords["mqtt-tokend"])
    assert not agent.connect().is_failure  # type: ignore[attr-defined]
    for topic in ("token", "token/app", "health", "availability", "devices", "login"):
        agent.publish(f"{BASE}/{topic}", b"left behind", retain=True)
    discovery = discovery_messages(
        base_topic=BASE, discovery_prefix="homeassistant", version="test", expire_after=60
    )
    for topic, payload in discovery:
        agent.publish(topic, payload, retain=True)
    agent.close()

    password = tmp_path / "mqtt_password"
    password.write_text(broker.passwords["mqtt-tokend"] + "\n")
    password.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[spotify]\nclient_id = "x"\n[mqtt]\nport = {broker.port}\nusername = "mqtt-tokend"\n'
        f'password_file = "{password}"\n[agent]\nstate_dir = "{tmp_path}"\n'
    )
    ha = Peer(broker.port, "homeassistant", broker.passwords["homeassistant"])
    assert not ha.connect().is_failure  # type: ignore[attr-defined]
    before = retained(ha, "homeassistant/#", f"{BASE}/#")
    ha.close()
    assert {t for t, _p in discovery} <= set(before), "Home Assistant saw the device"

    result = subprocess.run(
        # -I -S: no site-packages, so no paho: it must work once the venv is gone.
        [sys.executable, "-I", "-S", str(DEPLOY / "forget_broker.py"), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ha = Peer(broker.port, "homeassistant", broker.passwords["homeassistant"])
    assert not ha.connect().is_failure  # type: ignore[attr-defined]
    player = Peer(broker.port, "lofi-player", broker.passwords["lofi-player"])
    assert not player.connect().is_failure  # type: ignore[attr-defined]
    try:
        assert retained(ha, "homeassistant/#", f"{BASE}/#") == {}
        assert retained(player, f"{BASE}/#") == {}
    finally:
        ha.close()
        player.close()


def test_staged_purge_says_it_would_clear_the_broker(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    run_installer(snapshot, root, "--no-venv", "--no-mosquitto")
    result = run_installer(snapshot, root, "--uninstall", "--purge")
    assert (
        f"would run: python3 {snapshot}/deploy/forget_broker.py /etc/mqtt-tokend/config.toml"
        in (result.stdout)
    ), "a staged root without a broker of its own (--broker-restart) never touches this one"
