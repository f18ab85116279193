"""deploy/setup_auto_tokens.sh in --root mode: what it lays out, with which modes, that a second
run changes nothing, that keys and configs are never overwritten, and what --uninstall keeps."""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from mqtt_tokend.contract.wording import auth_command
from tests.deploy.conftest import DEPLOY, INSTALLER_TIMEOUT, run_installer

NEXT_STEP = "sudo mqtt-tokend auth"
UNITS = [
    "lofi-pi-token-manager.service",
    "lofi-pi-token-manager@.service",
    "lofi-pi-token-health.service",
    "lofi-pi-token-health.timer",
]
HOST_PATHS = [
    "/etc/mqtt-tokend",
    "/var/lib/mqtt-tokend",
    "/opt/mqtt-tokend",
    "/etc/cron.d/mqtt-tokend",
    "/etc/mosquitto/conf.d/mqtt-tokend.conf",
    "/etc/mosquitto/mqtt-tokend",
    "/usr/local/bin/mqtt-tokend",
    *(f"/etc/systemd/system/{unit}" for unit in UNITS),
]
have_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed"
)


def manifest(root: Path) -> dict[str, tuple[object, ...]]:
    """Relative path -> (kind, mode, size, SHA-256) for every file, directory and symlink."""
    entries: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            entries[rel] = ("link", str(path.readlink()))
        elif stat.S_ISDIR(info.st_mode):
            entries[rel] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            entries[rel] = ("file", stat.S_IMODE(info.st_mode), info.st_size, digest)
    return entries


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def host_state() -> dict[str, object]:
    state: dict[str, object] = {p: os.path.lexists(p) for p in HOST_PATHS}
    try:
        pwd.getpwnam("mqtt-tokend")
        state["user"] = True
    except KeyError:
        state["user"] = False
    return state


def assert_fernet_key(text: str) -> None:
    key = text.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32, "a Fernet key is 32 url-safe base64 bytes"
    assert text.endswith("\n") and "\n" not in key


@have_mosquitto
def test_staged_install_lays_out_everything_with_tight_modes(
    snapshot: Path, tmp_path: Path
) -> None:
    before = host_state()
    root = tmp_path / "root"
    result = run_installer(snapshot, root, "--no-venv")
    assert host_state() == before, "--root must not touch the host"

    assert mode(root / "etc/mqtt-tokend") == 0o751
    assert mode(root / "var/lib/mqtt-tokend") == 0o700
    key = root / "etc/mqtt-tokend/fernet.key"
    assert mode(key) == 0o440
    assert_fernet_key(key.read_text())

    config = root / "etc/mqtt-tokend/config.toml"
    assert mode(config) == 0o640
    settings = tomllib.loads(config.read_text())
    assert settings["mqtt"]["username"] == "mqtt-tokend"
    assert settings["mqtt"]["password_file"] == "/etc/mqtt-tokend/mqtt_password"
    template = tomllib.loads((DEPLOY / "config.example.toml").read_text())
    assert settings["spotify"] == template["spotify"]
    assert settings["agent"] == template["agent"]

    broker_dir = root / "etc/mosquitto/mqtt-tokend"
    passwd = broker_dir / "passwd"
    assert mode(passwd) == 0o600
    users = [line.split(":")[0] for line in passwd.read_text().splitlines()]
    assert users == ["mqtt-tokend", "lofi-player", "homeassistant"]
    credentials = dict(
        line.split(":", 1) for line in (broker_dir / "credentials").read_text().splitlines()
    )
    assert mode(broker_dir / "credentials") == 0o600
    agent_password = root / "etc/mqtt-tokend/mqtt_password"
    assert mode(agent_password) == 0o600
    assert agent_password.read_text() == credentials["mqtt-tokend"] + "\n"
    assert (root / "etc/mosquitto/conf.d/mqtt-tokend.conf").read_bytes() == (
        DEPLOY / "mosquitto/mosquitto.conf"
    ).read_bytes()
    assert (broker_dir / "acl").read_bytes() == (DEPLOY / "mosquitto/acl").read_bytes()
    assert mode(broker_dir / "acl") == 0o640

    for unit in UNITS:
        installed = root / "etc/systemd/system" / unit
        assert installed.read_bytes() == (DEPLOY / "systemd" / unit).read_bytes()
        assert mode(installed) == 0o644
    assert not (root / "etc/cron.d").exists(), "the timer is the default, not cron"

    out = result.stdout
    assert "would run: useradd --system --gid mqtt-tokend" in out
    assert (
        "would run: systemctl enable lofi-pi-token-manager.service lofi-pi-token-health.timer"
        in out
    )
    assert NEXT_STEP in out
    assert credentials["mqtt-tokend"] not in out + result.stderr, "passwords are never printed"
    assert key.read_text().strip() not in out + result.stderr


@have_mosquitto
def test_second_run_changes_nothing(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    run_installer(snapshot, root, "--no-venv")
    first = manifest(root)
    again = run_installer(snapshot, root, "--no-venv")
    assert manifest(root) == first
    assert "installed " not in again.stdout and "created " not in again.stdout
    assert "kept /etc/mqtt-tokend/fernet.key" in again.stdout


def test_key_and_config_are_never_overwritten(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/mqtt-tokend").mkdir(parents=True)
    key = root / "etc/mqtt-tokend/fernet.key"
    key.write_text("the-key-consumers-already-use\n")
    config = root / "etc/mqtt-tokend/config.toml"
    config.write_text('[spotify]\nclient_id = "edited by the owner"\n')
    unit = root / "etc/systemd/system/lofi-pi-token-manager.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/false\n")

    run_installer(snapshot, root, "--no-venv", "--no-mosquitto")
    assert key.read_text() == "the-key-consumers-already-use\n"
    assert config.read_text() == '[spotify]\nclient_id = "edited by the owner"\n'
    assert unit.read_bytes() == (DEPLOY / "systemd" / unit.name).read_bytes(), "units are ours"


def test_cron_instead_of_the_timer(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = run_installer(snapshot, root, "--no-venv", "--no-mosquitto", "--cron")
    cron = root / "etc/cron.d/mqtt-tokend"
    assert cron.read_bytes() == (DEPLOY / "cron/mqtt-tokend").read_bytes()
    assert mode(cron) == 0o644
    assert "would run: systemctl enable lofi-pi-token-manager.service\n" in result.stdout


@have_mosquitto
def test_uninstall_keeps_the_session_and_purge_removes_it(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    run_installer(snapshot, root, "--no-venv", "--cron")
    (root / "opt/mqtt-tokend/venv/bin").mkdir(parents=True)  # stands in for the venv
    session = root / "var/lib/mqtt-tokend/spotify_tokens.json"
    session.write_text("{}")
    key = (root / "etc/mqtt-tokend/fernet.key").read_text()

    run_installer(snapshot, root, "--uninstall")
    assert not (root / "opt/mqtt-tokend").exists()
    assert not (root / "etc/cron.d/mqtt-tokend").exists()
    assert not any((root / "etc/systemd/system").iterdir())
    assert session.read_text() == "{}"
    assert (root / "etc/mqtt-tokend/fernet.key").read_text() == key
    assert (root / "etc/mqtt-tokend/config.toml").exists()
    assert (root / "etc/mosquitto/mqtt-tokend/passwd").exists(), "the player still logs in"

    run_installer(snapshot, root, "--uninstall", "--purge")
    left = {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}
    assert left == set()


def test_purge_alone_is_a_full_uninstall_and_unknown_options_are_refused(
    snapshot: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    run_installer(snapshot, root, "--no-venv", "--no-mosquitto")
    purge = run_installer(snapshot, root, "--purge")
    assert "purged mqtt-tokend" in purge.stdout
    assert [p for p in root.rglob("*") if not p.is_dir()] == []
    unknown = run_installer(snapshot, tmp_path / "root", "--frobnicate", check=False)
    assert unknown.returncode != 0
    assert "unknown argument: --frobnicate" in unknown.stderr


@have_mosquitto
def test_full_install_with_venv_twice_leaves_the_identical_tree(
    snapshot: Path, tmp_path: Path
) -> None:
    """The slow one: a real virtual environment with the package pip-installed from the
    repository; the second run must not change a byte, a mode or a file."""
    root = tmp_path / "root"
    run_installer(snapshot, root)
    first = manifest(root)
    again = run_installer(snapshot, root)
    assert manifest(root) == first
    assert "kept /opt/mqtt-tokend/venv" in again.stdout

    venv = root / "opt/mqtt-tokend/venv"
    assert os.access(venv / "bin/mqtt-tokend", os.X_OK)
    imported = subprocess.run(
        [str(venv / "bin/python"), "-c", "import mqtt_tokend; print(mqtt_tokend.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert imported.stdout.strip()

    # The printed login command, `sudo mqtt-tokend auth`, through the installed wrapper: it
    # reaches the venv's binary with the installed config (here as this user, the staged
    # install's stand-in for mqtt-tokend; --help so nothing touches the host's /var/lib).
    printed = auth_command("/etc/mqtt-tokend/config.toml").split()
    assert printed == ["sudo", "mqtt-tokend", "auth"]
    wrapper = subprocess.run(
        [str(root / "usr/local/bin" / printed[1]), *printed[2:], "--help"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MQTT_TOKEND_ROOT": str(root),
            "MQTT_TOKEND_SERVICE_USER": pwd.getpwuid(os.getuid()).pw_name,
        },
        timeout=60,
        check=False,
    )
    assert wrapper.returncode == 0, wrapper.stderr
    assert "usage: mqtt-tokend auth" in wrapper.stdout
    assert_fernet_key((root / "etc/mqtt-tokend/fernet.key").read_text())
    leftovers = [p.name for p in snapshot.iterdir() if p.name == "build" or p.suffix == ".egg-info"]
    assert leftovers == [], "the installer builds from a copy, never in the repository"


HOST_SIMULATION = r"""
set -euo pipefail
layers=$1 installer=$2
for dir in etc var opt usr/local; do
    mkdir -p "$layers/$dir/upper" "$layers/$dir/work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$layers/$dir/upper,workdir=$layers/$dir/work" "/$dir" || exit 99
    [ "$(stat -f -c %T "/$dir")" = overlayfs ] || exit 99
done
"$installer" --no-venv >"$layers/first.log" 2>&1
"$installer" --no-venv >"$layers/second.log" 2>&1
stat -c '%n %U:%G %a' /etc/mqtt-tokend /etc/mqtt-tokend/fernet.key \
    /etc/mqtt-tokend/config.toml /etc/mqtt-tokend/mqtt_password /var/lib/mqtt-tokend \
    /etc/mosquitto/mqtt-tokend/passwd /etc/mosquitto/mqtt-tokend/acl >"$layers/modes"
# A consumer in the key group reads the key and nothing else of /etc/mqtt-tokend.
useradd --system --no-create-home lofi-test-player
usermod -aG mqtt-tokend-key lofi-test-player
as_player() { setpriv --reuid=lofi-test-player --regid=lofi-test-player --init-groups "$@"; }
for file in fernet.key config.toml mqtt_password; do
    if as_player cat "/etc/mqtt-tokend/$file" >/dev/null 2>&1; then r=yes; else r=no; fi
    echo "$file $r" >>"$layers/player"
done
# The wrapper on PATH runs the venv's binary as the agent's user with the installed config.
mkdir -p /opt/mqtt-tokend/venv/bin
printf '#!/bin/sh\necho "$(id -un) $*"\ntouch /var/lib/mqtt-tokend/written-by-auth\n' \
    >/opt/mqtt-tokend/venv/bin/mqtt-tokend
chmod 755 /opt/mqtt-tokend/venv/bin/mqtt-tokend
PATH=/usr/local/bin:$PATH mqtt-tokend auth >"$layers/wrapper" 2>&1
stat -c '%U' /var/lib/mqtt-tokend/written-by-auth >>"$layers/wrapper"
# The network is the host's: the purge must not clear the retained topics of this machine's
# own broker on 127.0.0.1:1883 (test_uninstall.py clears a staged broker's for real).
MQTT_TOKEND_KEEP_RETAINED=1 "$installer" --uninstall --purge >"$layers/purge.log" 2>&1
if id -u mqtt-tokend >/dev/null 2>&1; then echo "user still there" >>"$layers/purge.log"; fi
"""


@have_mosquitto
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount overlays")
def test_host_install_in_a_private_mount_namespace(snapshot: Path, tmp_path: Path) -> None:
    """The host path (useradd, chown, groups) for real, with /etc, /var and /opt overlaid in a
    private mount namespace: every write lands in tmp_path, the host sees nothing."""
    before = host_state()
    script = tmp_path / "simulate.sh"
    script.write_text(HOST_SIMULATION)
    installer = str(snapshot / "deploy" / "setup_auto_tokens.sh")
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "bash",
            str(script),
            str(tmp_path),
            installer,
        ],
        capture_output=True,
        text=True,
        timeout=INSTALLER_TIMEOUT,
        check=False,
    )
    assert host_state() == before, "the host must not change"
    if result.returncode == 99 or "unshare failed" in result.stderr:
        pytest.skip(f"cannot overlay /etc, /var, /opt here: {result.stderr.strip()}")
    logs = {p.stem: p.read_text() for p in tmp_path.glob("*.log")}
    assert result.returncode == 0, f"{result.stderr}\n{logs}"

    assert "created user mqtt-tokend" in logs["first"]
    assert "created " not in logs["second"] and "installed " not in logs["second"]
    modes = dict(line.split(" ", 1) for line in (tmp_path / "modes").read_text().splitlines())
    broker = (
        "mosquitto:mosquitto" if "mosquitto" in {p.pw_name for p in pwd.getpwall()} else "root:root"
    )
    assert modes == {
        "/etc/mqtt-tokend": "root:mqtt-tokend 751",
        "/etc/mqtt-tokend/fernet.key": "mqtt-tokend:mqtt-tokend-key 440",
        "/etc/mqtt-tokend/config.toml": "root:mqtt-tokend 640",
        "/etc/mqtt-tokend/mqtt_password": "mqtt-tokend:mqtt-tokend 600",
        "/var/lib/mqtt-tokend": "mqtt-tokend:mqtt-tokend 700",
        "/etc/mosquitto/mqtt-tokend/passwd": f"{broker} 600",
        "/etc/mosquitto/mqtt-tokend/acl": f"root:{broker.split(':')[1]} 640",
    }
    player = dict(line.split() for line in (tmp_path / "player").read_text().splitlines())
    assert player == {"fernet.key": "yes", "config.toml": "no", "mqtt_password": "no"}
    assert (tmp_path / "wrapper").read_text() == (
        "mqtt-tokend --config /etc/mqtt-tokend/config.toml auth\nmqtt-tokend\n"
    )
    assert "purged mqtt-tokend" in logs["purge"]
    assert "user still there" not in logs["purge"]
