"""`mqtt-tokend demo` as a new user runs it: everything starts, refreshes show, it stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.deploy.conftest import Peer
from tests.integration.conftest import CLI
from tests.integration.watch import patient, wait_until

pytestmark = pytest.mark.integration


def test_demo_logs_in_refreshes_live_and_stops_cleanly() -> None:
    result = subprocess.run(
        [*CLI, "demo", "--duration", "9", "--token-lifetime", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    private = re.search(r"broker: a private Mosquitto at 127\.0\.0\.1:(\d+)", out)
    assert private and private.group(1) != "1883", "by default the demo never uses 1883"
    assert "Logged in to Spotify as" in out
    assert re.search(r"mosquitto_sub -p \d+ -v -t 'lofi/spotify/#'", out)
    assert re.search(r"mosquitto_pub -p \d+ -t lofi/spotify/request/refresh -n", out)
    assert "availability: online" in out
    tokens = re.findall(r"token: access token sha256:([0-9a-f]{12})", out)
    assert len(set(tokens)) >= 3, out  # the first token and at least two refreshes
    assert "health: ok (token refreshed)" in out
    assert "agent stopped (exit 0)" in out
    assert "Traceback" not in out + result.stderr


def retained_on(port: int) -> dict[str, bytes]:
    """Every retained message on the broker: subscribe to '#', then publish a sentinel at QoS 1;
    the broker queued the retained messages to this client before routing the sentinel back."""
    peer = Peer(port, None, None)
    try:
        assert not peer.connect().is_failure  # type: ignore[attr-defined]
        peer.subscribe("#")
        peer.publish("sentinel/demo-test", b"barrier")
        peer.wait_for("sentinel/demo-test", b"barrier")
        return {t: p for t, p, retain in peer.messages if retain and p}
    finally:
        peer.close()


def test_demo_on_a_shared_broker_leaves_no_retained_message(tmp_path: Path) -> None:
    """The user's broker (here a Mosquitto of the test's own, standing for 127.0.0.1:1883)
    keeps what it had and gets nothing of the demo's: no token, no health, no discovery."""
    with PrivateMosquitto(tmp_path / "broker") as broker:
        before = {"home/kitchen/light": b"on"}
        owner = Peer(broker.port, None, None)
        assert not owner.connect().is_failure  # type: ignore[attr-defined]
        owner.publish("home/kitchen/light", b"on", retain=True)
        owner.close()
        watcher = Peer(broker.port, None, None)
        assert not watcher.connect().is_failure  # type: ignore[attr-defined]
        watcher.subscribe("#")
        result = subprocess.run(
            [
                *CLI,
                "demo",
                "--duration",
                "6",
                "--token-lifetime",
                "4",
                "--shared-broker",
                f"127.0.0.1:{broker.port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        seen = watcher.topics()
        watcher.close()
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "availability: online" in out and "token: access token" in out
        assert "removed the demo's retained messages" in out
        published = {t for t in seen if t.startswith("mqtt-tokend-demo/")}
        assert any(t.endswith("/config") for t in published), "it did publish discovery"
        assert not any(t.startswith(("lofi/spotify/", "homeassistant/")) for t in seen)
        assert retained_on(broker.port) == before


def test_demo_relogin_shows_the_six_month_login_end_to_end() -> None:
    """`./scripts/demo --relogin` (the script passes its options to `mqtt-tokend demo`)."""
    result = subprocess.run(
        [*CLI, "demo", "--relogin", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [
        "Logged in to Spotify as",
        "health: ok",
        "login 181 days old",
        "health: auth_required (Spotify ended this login",
        "a person now runs what health says: mqtt-tokend --config",
        "Logged in to Spotify as",
        "re-login scene: ok again",
        "agent stopped (exit 0)",
    ]
    at = 0
    for step in steps:
        found = out.find(step, at)
        assert found >= 0, f"{step!r} missing after position {at}:\n{out}"
        at = found + len(step)
    assert "Traceback" not in out + result.stderr


def test_ctrl_c_twice_still_stops_the_agent_before_the_demo_leaves(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground group (demo, agent, broker); an impatient owner
    presses it twice. The demo still waits for its agent, then removes its state directory."""
    output = tmp_path / "demo.out"
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [*CLI, "demo", "--token-lifetime", "30"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group, as a terminal's foreground job
        )
    try:
        wait_until(
            lambda: "health: ok" in output.read_text(),
            timeout=60,
            what="the demo's first ok health",
        )
        os.killpg(demo.pid, signal.SIGINT)
        wait_until(
            lambda: "\n\n" in output.read_text().split("Ctrl-C")[-1],
            timeout=10,
            what="the demo to take the first Ctrl-C",
        )
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=patient(30)) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    text = output.read_text()
    assert "agent stopped (exit 0)" in text, text
    with pytest.raises(ProcessLookupError):  # nothing of the demo's group is left running
        os.killpg(demo.pid, 0)
    state = re.search(r"Tokens stored in (\S+)/state\.", text)
    assert state is not None, text
    assert not Path(state.group(1)).exists(), "the demo's temporary directory was left behind"
