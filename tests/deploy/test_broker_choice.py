"""setup_broker.py's choices without a running broker: Home Assistant's account (named,
asked on a terminal, refused otherwise), secret files that are never readable by others, and
--remove putting a shared ACL and password file back as they were. The real-broker proof of
each merge is test_broker_matrix.py."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, WAIT

sys.path.insert(0, str(DEPLOY / "mosquitto"))
import broker_install  # isort: skip

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed"
)

SETUP = DEPLOY / "mosquitto" / "setup_broker.py"
LOCAL = (
    "listener 1883\nallow_anonymous false\n"
    "password_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n"
)
ACL = (
    "user hass\ntopic read #\ntopic write homeassistant/status\n\n"
    "user zigbee2mqtt\ntopic readwrite zigbee2mqtt/#\ntopic readwrite homeassistant/#\n"
)


def stage(root: Path, acl: str = ACL) -> Path:
    etc = root / "etc/mosquitto"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "mosquitto.conf").write_text("include_dir /etc/mosquitto/conf.d\n")
    (etc / "conf.d/local.conf").write_text(LOCAL)
    (etc / "acl").write_text(acl)
    for number, user in enumerate(("hass", "zigbee2mqtt")):
        create = [] if number else ["-c"]
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(etc / "passwd"), user, f"{user}-pw"],
            check=True,
            capture_output=True,
            timeout=WAIT,
        )
    return etc


def setup(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SETUP), "--root", str(root), "--deploy", str(DEPLOY), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def files(etc: Path) -> dict[str, bytes]:
    return {str(p.relative_to(etc)): p.read_bytes() for p in etc.rglob("*") if p.is_file()}


def test_without_ha_user_it_names_the_candidates_and_writes_nothing(tmp_path: Path) -> None:
    etc = stage(tmp_path)
    before = files(etc)
    result = setup(tmp_path)
    assert result.returncode == 4, result.stdout
    assert "Candidates: hass, zigbee2mqtt" in result.stdout
    assert "--ha-user NAME" in result.stdout and "Nothing was changed" in result.stdout
    assert files(etc) == before


def test_an_unknown_ha_user_is_refused(tmp_path: Path) -> None:
    etc = stage(tmp_path)
    before = files(etc)
    result = setup(tmp_path, "--ha-user", "hassio")
    assert result.returncode == 3
    assert "--ha-user hassio: no such user" in result.stdout
    assert files(etc) == before


def test_on_a_terminal_the_owner_names_home_assistants_account(tmp_path: Path) -> None:
    """The question on a terminal; the answer becomes Home Assistant's account (and no second
    `homeassistant` account is made)."""
    etc = stage(tmp_path)
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, str(SETUP), "--root", str(tmp_path), "--deploy", str(DEPLOY)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        os.close(follower)
        os.write(leader, b"hass\n")
        out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0, out
    assert "Which broker account does Home Assistant log in with?" in out
    assert "Home Assistant's account: hass" in out
    assert "  hass (Home Assistant): may no longer read token, token/app" in out
    users = (etc / "passwd").read_text()
    assert "\nhomeassistant:" not in users and "mqtt-tokend:" in users
    assert "homeassistant" not in (etc / "mqtt-tokend/credentials").read_text()
    assert "user hass\ntopic deny lofi/spotify/token\n" in (etc / "acl").read_text()
    again = setup(tmp_path)  # remembered: no question the second time
    assert again.returncode == 0 and "Home Assistant's account: hass" in again.stdout


def test_an_anonymous_home_assistant_gets_an_instruction(tmp_path: Path) -> None:
    """Debian's stock broker: anonymous clients get none of the agent's topics, so the
    installer says how Home Assistant logs in instead."""
    etc = tmp_path / "etc/mosquitto"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "mosquitto.conf").write_text("include_dir /etc/mosquitto/conf.d\n")
    result = setup(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "a Home Assistant that connects without a user name sees no mqtt-tokend" in (
        result.stdout
    )
    assert "Home Assistant logs in as 'homeassistant'" in result.stdout
    assert "/etc/mosquitto/mqtt-tokend/credentials" in result.stdout


def test_remove_puts_a_shared_acl_and_password_file_back(tmp_path: Path) -> None:
    etc = stage(tmp_path)
    before = files(etc)
    assert setup(tmp_path, "--ha-user", "hass").returncode == 0
    assert files(etc) != before
    assert setup(tmp_path, "--remove").returncode == 0
    assert files(etc) == before


def test_secret_files_are_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under umask 000 the new file has its final mode (0600) before its first byte, and an
    existing file keeps its mode: every file in the directory is looked at the moment the
    secret goes in."""
    seen: list[int] = []
    real_fsync = os.fsync

    def watching(descriptor: int) -> None:
        seen.extend(p.stat().st_mode & 0o777 for p in (tmp_path / "etc").iterdir())
        real_fsync(descriptor)

    monkeypatch.setattr(broker_install.os, "fsync", watching)
    old = os.umask(0)
    try:
        host = broker_install.Host(str(tmp_path))
        change = broker_install.Change("/etc/credentials", b"agent:secret\n", 0o600, "")
        broker_install.write(host, change, on_host=False)
        (tmp_path / "etc/credentials").chmod(0o640)
        broker_install.write(host, change, on_host=False)
    finally:
        os.umask(old)
    assert seen and all(mode & 0o007 == 0 for mode in seen), [oct(m) for m in seen]
    assert (tmp_path / "etc/credentials").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["credentials"]


def test_the_lines_printed_for_a_home_assistant_that_may_write_everything_work(
    tmp_path: Path,
) -> None:
    """`hass` with `topic readwrite #` is refused with the section to write instead; with
    exactly that section in its ACL, the next run merges."""
    etc = stage(tmp_path, acl="user hass\ntopic readwrite #\n")
    before = files(etc)
    refused = setup(tmp_path, "--ha-user", "hass")
    assert refused.returncode == 3 and files(etc) == before
    assert "its ACL lines 'topic readwrite #'" in refused.stdout
    lines = refused.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "user hass")
    end = next(i for i, line in enumerate(lines) if "(the command topics" in line)
    section = [line.strip() for line in lines[start:end]]
    assert section[:2] == ["user hass", "topic read #"]
    (etc / "acl").write_text("\n".join(section) + "\n")
    merged = setup(tmp_path, "--ha-user", "hass")
    assert merged.returncode == 0, merged.stdout
    assert "  hass (Home Assistant): may no longer read token, token/app" in merged.stdout
