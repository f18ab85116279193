"""The broker merge proven over a matrix of the brokers real households run. Each case is a
staged machine (--root) whose Mosquitto really runs (staged_broker.py, 1883 moved to a free
port). Every principal (anonymous clients, each user, the agent's accounts) publishes to and
subscribes on every agent and discovery topic and a sample of other topics, before and after
setup_broker.py; afterwards the guarantee list holds, checked by real messages:

  * `<base>/login` and `<base>/response/auth` reach the agent and Home Assistant only;
  * everything the agent publishes (tokens, health, availability, devices, alert, login,
    responses, its discovery configs) is accepted from the agent only;
  * the tokens reach the agent and the player only, never Home Assistant or anonymous clients;
  * every outcome of every other principal outside the agent's topics is what it was.

A broker the merge cannot reason about (dynamic security, per_listener_settings), and a Home
Assistant account that may write the agent's topics, is refused with nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.broker_probe import Outcomes, Principal, probe
from tests.deploy.conftest import MOSQUITTO, WAIT, free_port
from tests.deploy.staged_broker import StagedMachine

import broker_rights as rights  # isort: skip (deploy/mosquitto, put on the path by staged_broker)

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

DEBIAN_MAIN = "pid_file /run/mosquitto/mosquitto.pid\ninclude_dir /etc/mosquitto/conf.d\n"
WITH_FILES = (
    "listener 1883\nallow_anonymous {anonymous}\n"
    "password_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n"
)
DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
AGENT, PLAYER = "mqtt-tokend", "lofi-player"
OUTSIDE = [t for t in rights.OUTSIDE if not t.startswith("$")] + [
    "zigbee2mqtt/lamp/set",
    "sensors/temperature",
    "devices/display/state",
    "devices/sensor1/state",
    "display/text",
    "nodered/flow",
]
TOPICS = [*rights.PUBLISHED, *rights.REQUESTS, *OUTSIDE]


@dataclass(frozen=True)
class Case:
    """A starting broker: its conf.d file (None: Debian's stock configuration), ACL, users."""

    conf: str | None
    acl: str | None = None
    users: dict[str, str] = field(default_factory=dict)
    ha_user: str | None = None  # --ha-user
    refused: str | None = None  # what the installer prints when it must refuse
    exit_code: int = 0
    anonymous: bool = False  # anonymous clients connect before the merge


CASES = {
    "1-stock-debian": Case(None, anonymous=True),
    "2-ha-addon-hass-readwrite-all": Case(
        WITH_FILES.format(anonymous="false"),
        "user hass\ntopic readwrite #\n",
        {"hass": "hass-pw"},
        ha_user="hass",
        refused="Home Assistant's account 'hass' may write the agent's topics",
        exit_code=3,
    ),
    "3-ha-and-zigbee2mqtt": Case(
        WITH_FILES.format(anonymous="false"),
        "user hass\ntopic read #\ntopic write homeassistant/status\n"
        "topic write zigbee2mqtt/+/set\n\n"
        "user zigbee2mqtt\ntopic readwrite zigbee2mqtt/#\ntopic readwrite homeassistant/#\n\n"
        "user nodered\ntopic readwrite #\n",
        {"hass": "hass-pw", "zigbee2mqtt": "z2m-pw", "nodered": "red-pw"},
        ha_user="hass",
    ),
    "4-anonymous-read-all": Case(
        WITH_FILES.format(anonymous="true"),
        "topic read #\n\nuser sensor\ntopic readwrite sensors/#\n",
        {"sensor": "sensor-pw"},
        anonymous=True,
    ),
    "5-pattern-read-all": Case(
        WITH_FILES.format(anonymous="false"),
        "pattern read #\npattern readwrite devices/%u/#\n\nuser display\ntopic write display/#\n",
        {"display": "display-pw", "sensor1": "sensor1-pw"},  # sensor1: no section of its own
        ha_user="homeassistant",
    ),
    "6-existing-homeassistant-user": Case(
        WITH_FILES.format(anonymous="false"),
        "user homeassistant\ntopic readwrite #\n",
        {"homeassistant": "ha-own-pw"},
        refused="which account does Home Assistant log in with? ",
        exit_code=4,
    ),
    "7-per-listener-settings": Case(
        "per_listener_settings true\nlistener 1883\nallow_anonymous true\n",
        refused="per_listener_settings is true",
        exit_code=3,
        anonymous=True,
    ),
    "7b-per-listener-settings-one-listener": Case(
        "per_listener_settings true\n" + WITH_FILES.format(anonymous="true"),
        "topic read #\n\nuser nodered\ntopic readwrite #\n",
        {"nodered": "red-pw"},
        ha_user="homeassistant",
        anonymous=True,
    ),
    "8-password-file-without-acl": Case(
        "listener 1883\nallow_anonymous false\npassword_file /etc/mosquitto/passwd\n",
        None,
        {"alice": "alice-pw", "bob": "bob-pw"},
        ha_user="homeassistant",
    ),
    "10-anonymous-readwrite-all-two-listeners": Case(
        "listener 1883\nlistener 1884 127.0.0.1\nallow_anonymous true\n"
        "password_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n",
        "topic readwrite #\n\nuser hass\ntopic read #\ntopic write homeassistant/status\n",
        {"hass": "hass-pw"},
        ha_user="hass",
        anonymous=True,
    ),
    "9-dynamic-security": Case(
        f"listener 1883\nplugin {DYNSEC}\n"
        "plugin_opt_config_file /etc/mosquitto/dynamic-security.json\n",
        users={"admin": "admin-pw"},
        refused="dynamic security decides who may do what",
        exit_code=3,
    ),
}


class Machine(StagedMachine):
    """A staged machine with Debian's Mosquitto layout and its running broker."""

    def __init__(self, root: Path, work: Path, name: str) -> None:
        super().__init__(root, work, free_port())
        self.name = name
        self.case = case = CASES[name]
        etc = root / "etc/mosquitto"
        (etc / "conf.d").mkdir(parents=True)
        (etc / "mosquitto.conf").write_text(DEBIAN_MAIN)
        if case.conf is not None:
            (etc / "conf.d/local.conf").write_text(case.conf)
        if case.acl is not None:
            (etc / "acl").write_text(case.acl)
        if "dynamic-security" in (case.conf or ""):
            command = ["mosquitto_ctrl", "dynsec", "init", str(etc / "dynamic-security.json")]
            subprocess.run([*command, "admin", "admin-pw"], check=True, capture_output=True)
        else:
            for user, password in case.users.items():
                exists = (etc / "passwd").exists()
                command = ["mosquitto_passwd", *([] if exists else ["-c"]), "-b"]
                subprocess.run(
                    [*command, str(etc / "passwd"), user, password],
                    check=True,
                    capture_output=True,
                    timeout=WAIT,
                )
        for path in etc.rglob("*"):  # Mosquitto reads them after dropping root
            path.chmod(0o755 if path.is_dir() else 0o644)

    def install(self, deploy: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(deploy / "mosquitto" / "setup_broker.py")]
        command += ["--root", str(self.root), "--deploy", str(deploy), "--restart", self.restart]
        if self.case.ha_user:
            command += ["--ha-user", self.case.ha_user]
        return subprocess.run(
            [*command, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def credentials(self) -> dict[str, str]:
        text = (self.root / "etc/mosquitto/mqtt-tokend/credentials").read_text()
        return dict(line.split(":", 1) for line in text.splitlines())


def existing(case: Case) -> dict[str, Principal]:
    found: dict[str, Principal] = {user: (user, password) for user, password in case.users.items()}
    if case.anonymous:
        found["anonymous"] = (None, None)
    return found


@pytest.fixture
def machine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Machine]:
    staged = Machine(tmp_path / "root", tmp_path / "broker", request.param)
    try:
        yield staged
    finally:
        staged.stop()


def guarantees(after: Outcomes, ha: str, others: list[str]) -> list[str]:
    """Each way the observed outcomes break the guarantee list (empty: it holds)."""
    broken = []
    for who in [AGENT, PLAYER, ha, *others]:
        for topic in rights.PUBLISHED:
            if after.may_write(who, topic) != (who == AGENT):
                broken.append(f"{who} write {topic}: {after.may_write(who, topic)}")
            readers = {AGENT, ha} if topic in rights.ONLY_HA else {AGENT, PLAYER}
            reads = after.reads_from(who, topic, {AGENT})
            if topic in (*rights.ONLY_HA, *rights.TOKENS) and reads != (who in readers):
                broken.append(f"{who} read {topic}: {reads}")
    return broken + home_assistant_and_player_work(after, ha)


def home_assistant_and_player_work(after: Outcomes, ha: str) -> list[str]:
    """What Home Assistant's account and the player cannot do but must."""
    broken = [
        f"Home Assistant ({ha}) does not read {topic}"
        for topic in rights.HA_READS
        if not after.reads_from(ha, topic, {AGENT})
    ]
    broken += [
        f"Home Assistant ({ha}) cannot send {topic}"
        for topic in rights.REQUESTS
        if not after.reads_from(AGENT, topic, {ha})
    ]
    player_reads = (*rights.TOKENS, f"{rights.BASE}/health", f"{rights.BASE}/response/refresh")
    broken += [
        f"the player does not read {topic}"
        for topic in player_reads
        if not after.reads_from(PLAYER, topic, {AGENT})
    ]
    if not after.reads_from(AGENT, f"{rights.BASE}/request/refresh", {PLAYER}):
        broken.append("the player cannot ask for a refresh")
    return broken


def unchanged(before: Outcomes, after: Outcomes, principals: list[str]) -> list[str]:
    """Each outcome outside the agent's topics that the merge changed (empty: none)."""
    changed = []
    for topic in OUTSIDE:
        for who in principals:
            if before.may_write(who, topic) != after.may_write(who, topic):
                changed.append(f"{who} write {topic}")
            senders = set(principals)
            if before.reads_from(who, topic, senders) != after.reads_from(who, topic, senders):
                changed.append(f"{who} read {topic}")
    return changed


@pytest.mark.parametrize("machine", list(CASES), indirect=True)
def test_the_merge_holds_the_guarantees_on_every_starting_broker(
    machine: Machine, snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = machine.case
    machine.start()
    principals = existing(case)
    before = probe(machine.port, principals, TOPICS)
    assert all(before.connected.values()), f"a principal could not connect: {before.connected}"
    files = machine.broker_files()

    result = machine.install(snapshot / "deploy")
    assert result.returncode == case.exit_code, result.stdout + result.stderr
    if case.refused is not None:
        assert case.refused in result.stdout, result.stdout
        assert "Nothing was changed" in result.stdout
        assert machine.broker_files() == files, "a refused merge writes nothing"
        again = probe(machine.port, principals, TOPICS)
        assert again.published == before.published and again.received == before.received
        with capsys.disabled():
            print(f"\n{machine.name}: refused as expected, {again.probes} probes unchanged")
        return

    assert "mosquitto: restart done" in result.stdout, result.stdout
    passwords = machine.credentials()
    ha = case.ha_user or "homeassistant"
    ours: dict[str, Principal] = {
        AGENT: (AGENT, passwords[AGENT]),
        PLAYER: (PLAYER, passwords[PLAYER]),
    }
    if ha not in principals:
        ours[ha] = (ha, passwords[ha])
    after = probe(machine.port, {**principals, **ours}, TOPICS)
    assert all(after.connected.values()), f"a principal could not connect: {after.connected}"
    others = [name for name in principals if name != ha]
    assert guarantees(after, ha, others) == []
    assert unchanged(before, after, list(principals)) == []
    for name in principals:  # the installer says what it changed for each principal
        label = "anonymous clients" if name == "anonymous" else name
        assert f"  {label}" in result.stdout, result.stdout
    with capsys.disabled():
        print(f"\n{machine.name}: merged, {before.probes + after.probes} probes")

    again = machine.install(snapshot / "deploy")
    assert again.returncode == 0, again.stdout
    assert "updated" not in again.stdout and "installed /etc" not in again.stdout
