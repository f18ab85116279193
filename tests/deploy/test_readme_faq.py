"""The README's FAQ check "does Home Assistant's MQTT account read the agent's topics?", run as
written (USER, PASSWORD and the test broker's port filled in) against a Mosquitto started from
the shipped files: it prints the availability for Home Assistant's account within its timeout,
and prints nothing for an account the ACL keeps out."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.conftest import MOSQUITTO, REPO, STRANGER, WAIT, Broker, Peer

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto and its clients are not installed",
)

SECTION = "### The device shows in Home Assistant, but its entities are unavailable"
# user -> whether the FAQ's check prints the availability (the shipped ACL, docs/threat-model.md)
READS_AVAILABILITY = {"homeassistant": True, "lofi-player": True, STRANGER: False, None: False}


def faq_command() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) : text.index("\n### ", text.index(SECTION) + 1)]
    (line,) = re.findall(r"`(mosquitto_sub [^`]+)`", section)
    return shlex.split(line)


def as_user(command: list[str], user: str | None, password: str | None, port: int) -> list[str]:
    """The command with USER and PASSWORD filled in (left out for an anonymous client)."""
    filled: list[str] = []
    for word in command:
        if word in ("-u", "-P") and user is None:
            continue
        if word in ("USER", "PASSWORD"):
            if user is not None:
                filled.append(user if word == "USER" else str(password))
            continue
        filled.append(word)
    return [*filled, "-p", str(port)]


@pytest.mark.parametrize("user", list(READS_AVAILABILITY), ids=str)
def test_the_faqs_check_tells_who_reads_the_agents_topics(
    broker: Broker, peers: Callable[..., Peer], user: str | None
) -> None:
    agent = peers("mqtt-tokend")
    agent.connect()
    agent.publish("lofi/spotify/availability", "online", retain=True)
    password = broker.passwords.get(user) if user else None
    command = as_user(faq_command(), user, password, broker.port)
    result = subprocess.run(command, capture_output=True, text=True, timeout=WAIT + 10, check=False)
    printed = result.stdout.strip() == "lofi/spotify/availability online"
    assert printed == READS_AVAILABILITY[user], (result.returncode, result.stdout, result.stderr)
    assert (result.returncode == 0) == printed
