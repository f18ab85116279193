"""One tap logs the real agent in through a real Home Assistant's webhook, in plain words.

Spotify ends the agent's login (the emulator revokes it); the agent offers a new one, Home
Assistant shows what happened and the one line to do, the owner's phone is notified once
(`health-check` leaves that to the live agent), a stranger's redirect is not passed on, and
the owner's tap logs the agent in. Needs `MQTT_TOKEND_HA_VENV` like test_real_ha.py, and uses
the same Home Assistant, configuration and helpers (real_ha.py).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from mqtt_tokend.contract.wording import LOGIN_ENDED, auth_instructions
from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.homeassistant.flood import stranger_token
from tests.homeassistant.real_ha import (
    BASE,
    IDS,
    NOTIFICATIONS,
    OK,
    STATESTREAM,
    STEP_TIMEOUT,
    TOPICS,
    Agent,
    HomeAssistant,
    States,
    check_log,
    find_hass,
    pytestmark,
    write_config,
)
from tests.integration.conftest import AgentProcess, approve, cli, login, write_agent_config
from tests.integration.watch import Watcher, wait_until

__all__ = ["pytestmark"]  # the skip without a real Home Assistant (real_ha.py)


def agent_config(
    directory: Path, *, broker: PrivateMosquitto, emulator: SpotifyEmulator, redirect_uri: str
) -> Path:
    """A config for the real agent: the private broker, the emulator, Home Assistant's URI."""
    return write_agent_config(
        directory,
        emulator_url=emulator.url,
        mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": BASE, "keepalive": 5},
        redirect_uri=redirect_uri,
    )


def _offered_login(seen: Watcher, *, after: float) -> str:
    """The login URL the agent offers: on `<base>/login`, or (older agents) in the health record."""

    def offered() -> str | None:
        for m in reversed(seen.on(TOPICS.login)):
            if m.at >= after and m.payload:
                return m.payload.decode()
        for m in reversed(seen.on(TOPICS.health)):
            url = m.json().get("auth_url") if m.at >= after and m.payload else None
            if url:
                return str(url)
        return None

    url: str = wait_until(offered, timeout=STEP_TIMEOUT, what="the login the agent offers")
    return url


def ends_login(broker: PrivateMosquitto, emulator: SpotifyEmulator, seen: Watcher) -> str:
    """Six months later Spotify ends the login: the agent offers a new one (its URL)."""
    emulator.revoke_all()
    revoked = time.monotonic()
    agent_client = Agent(broker)
    agent_client.answer_births = False
    agent_client.publish(TOPICS.request("refresh"), "", retain=False)
    agent_client.close()
    seen.wait_for(TOPICS.health, state_is("auth_required"), after=revoked)
    return _offered_login(seen, after=revoked)


def state_is(state: str) -> Any:
    return lambda m: bool(m.payload) and m.json()["state"] == state


def test_one_tap_login_through_home_assistants_webhook(
    tmp_path: Path, broker: PrivateMosquitto
) -> None:
    """Spotify's redirect lands on Home Assistant's webhook, and the real agent is logged in."""
    hass = find_hass()
    assert hass is not None
    http_port, webhook_id = free_port(), stranger_token(43)
    webhook_url = f"http://127.0.0.1:{http_port}/api/webhook/{webhook_id}"
    config_dir = tmp_path / "ha"
    write_config(config_dir, broker_port=broker.port, http_port=http_port, webhook_id=webhook_id)
    with (
        SpotifyEmulator() as emulator,
        Watcher(broker.host, broker.port, "#") as seen,
        HomeAssistant(hass, config_dir) as home,
    ):
        config = agent_config(
            tmp_path / "agent", broker=broker, emulator=emulator, redirect_uri=webhook_url
        )
        # A first login by pasting (the fallback): the CLI takes Home Assistant's URI too.
        first = login(config)
        assert first.returncode == 0, first.stderr
        home.wait_started(seen)
        agent = AgentProcess(config).start()
        try:
            seen.wait_for(TOPICS.health, state_is("ok"), timeout=STEP_TIMEOUT)
            # Home Assistant has built the device (the alert entity too) before the login ends.
            States(seen).wait(IDS["token_state"], OK)
            States(seen).wait(IDS["alert"], "unknown")  # no event yet
            url = ends_login(broker, emulator, seen)
            _one_notification_in_plain_words(broker, seen, config, config_dir)

            # The owner taps the link Home Assistant shows, so it has the login on offer.
            States(seen).wait_attribute(IDS["login"], "auth_url", url)
            # Someone who knows the webhook but not the login's state gets nowhere: Home
            # Assistant does not pass it on (only the tap below reaches request/auth).
            forged = approve(url).replace("state=", "state=x", 1)
            assert forged.startswith(webhook_url)
            sent = time.monotonic()
            with urllib.request.urlopen(forged, timeout=10) as response:
                assert response.status == 200

            # The tap: the phone opens the link, Spotify redirects to the webhook, done.
            tapped = time.monotonic()
            with urllib.request.urlopen(url, timeout=10) as response:  # follows the redirect
                assert response.status == 200
                assert response.url.startswith(f"{webhook_url}?")
            ok = seen.wait_for(TOPICS.health, state_is("ok"), after=tapped, timeout=STEP_TIMEOUT)
            elapsed = ok.at - tapped
            (handed,) = [m for m in seen.on(TOPICS.request("auth")) if m.at >= sent]
            assert handed.payload.decode().startswith("code=")
            assert not handed.retain
            answer = seen.wait_for(TOPICS.response("auth"), after=tapped, timeout=STEP_TIMEOUT)
            assert answer.json()["status"] == "ok", answer.json()
            # Home Assistant shows it as well: the real agent's own discovery.
            wait_until(
                lambda: any(
                    m.at >= tapped and m.payload == OK.encode()
                    for m in seen.on(f"{STATESTREAM}/sensor/lofi_pi_spotify_token_state/state")
                ),
                timeout=STEP_TIMEOUT,
                what="Home Assistant showing OK",
            )
        finally:
            agent.stop()
    check_log(home)
    print(f"one-tap login: {elapsed:.2f} s from opening the link to health ok")


def _one_notification_in_plain_words(
    broker: PrivateMosquitto, seen: Watcher, config: Path, config_dir: Path
) -> None:
    """Home Assistant shows what happened and the one line to do, and the owner's phone hears
    of it once: `health-check` leaves the alert to the live agent."""
    states, line = States(seen), auth_instructions(str(config))
    states.wait_attribute(IDS["token_state"], "message", LOGIN_ENDED)
    states.wait_attribute(IDS["token_state"], "instructions", line)
    notifications = config_dir / NOTIFICATIONS

    def notified(text: str) -> bool:
        return notifications.is_file() and text in notifications.read_text()

    wait_until(lambda: notified(f"What to do: {line}"), timeout=STEP_TIMEOUT, what="notify")
    monitor = cli(config, "health-check")
    assert monitor.returncode == 2, monitor.stdout + monitor.stderr
    # A last alert after the monitor's run: the queued automation notifies in order.
    barrier = {"event": "something_new", "message": f"barrier {uuid.uuid4()}", "at": time.time()}
    agent = Agent(broker)
    agent.answer_births = False
    agent.publish(TOPICS.alert, json.dumps(barrier), retain=False)
    agent.close()
    wait_until(lambda: notified(barrier["message"]), timeout=STEP_TIMEOUT, what="the barrier")
    assert notifications.read_text().count(LOGIN_ENDED) == 1, notifications.read_text()
