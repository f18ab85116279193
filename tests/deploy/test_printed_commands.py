"""Every command the docs print in a shell block (README.md, deploy/README.md, the Home
Assistant README) and the installed Pi's CLI hints, run as printed on a staged install: the real
installer with its venv (--root), the staged Mosquitto running, the agent running as its own
user (`nobody` here) against the Spotify emulator, logged in with `sudo mqtt-tokend auth`.

`sudo` lines run as root, the others as a plain user (`daemon`). On PATH: the installed
/usr/local/bin/mqtt-tokend, a `sudo` that runs the command as root with VAR=VALUE words, and the
Mosquitto clients with the staged broker's port (the only translation: 1883 is this machine's).
A line this test does not run must be in NOT_RUN with the reason: a new line in a doc that is
neither run nor listed fails `test_every_printed_line_is_run_or_excused`."""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqtt_tokend.cli.login import start_command
from mqtt_tokend.config import parse_config
from mqtt_tokend.dev.emulator import DEMO_CLIENT_ID, SpotifyEmulator
from tests.deploy.conftest import DEPLOY, REPO, WAIT, Peer, free_port, run_installer
from tests.deploy.debian_broker import Staged
from tests.deploy.staged_install import rebase_config
from tests.integration.conftest import approve

# A Python every user may run, as /usr/bin/python3 on a Pi (a pyenv under /root is not).
SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_makes_venvs() -> bool:
    check = "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", check], timeout=30, check=False).returncode == 0
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run commands as other users"),
    pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs Mosquitto"),
    pytest.mark.skipif(not _system_python_makes_venvs(), reason=f"needs {SYSTEM_PYTHON} 3.11+"),
]
DOCS = [REPO / "README.md", DEPLOY / "README.md", DEPLOY / "homeassistant/README.md"]
AGENT_USER, AGENT_GROUP, PLAIN_USER = "nobody", "nogroup", "daemon"
NOT_RUN = {
    r"^\./scripts/": "the checkout's demo and test suite, not the installed Pi",
    r"^MQTT_TOKEND_HA_VENV=": "the checkout's Home Assistant tests",
    r"^sudo apt": "installs packages on the host",
    r"^git clone": "fetches the repository",
    r"^sudo deploy/setup_auto_tokens\.sh": "the installer itself: this test's install ran it",
    r"^sudo nano": "an editor",
    r"^sudo systemctl": "systemd of the host (the staged agent is a process of this test)",
    r"^sudo journalctl": "the host's journal",
    r"^curl .*api\.spotify\.com": "reaches Spotify; its `sudo mqtt-tokend get-token` is run",
    r"^read -rs PW && sudo LOFI_PLAYER": "changes the host's broker password file",
    r"^read -rs PW\s*(#.*)?$": "the input of the lines after it, run with each of them",
    r"^sudo mqtt-tokend auth\b": "run by the fixture: the login of this staged Pi",
    r"^sudo sed -i '/\^use_username_as_clientid/d'": (
        "needs a broker that forces client ids: tests/deploy/test_sessions.py runs it on one"
    ),
}


@dataclass(frozen=True)
class Printed:
    """One command line of a doc, with the `read` lines before it in its block."""

    where: str
    line: str
    reads: tuple[str, ...]


def printed_lines() -> list[Printed]:
    found: list[Printed] = []
    for doc in DOCS:
        block: list[str] | None = None
        reads: list[str] = []
        pending = ""
        for number, raw in enumerate(doc.read_text().splitlines(), 1):
            text = raw.strip()
            if text.startswith("```"):
                block, reads = ([] if text in ("```sh", "```bash") and block is None else None), []
                continue
            if block is None or not text or text.startswith("#"):
                continue
            pending += text
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            where = f"{doc.relative_to(REPO)}:{number}"
            found.append(Printed(where, pending, tuple(reads)))
            if pending.startswith("read "):
                reads.append(pending)
            pending = ""
    return found


def excuse(line: str) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, line)), None)


LINES = printed_lines()
RUN = [p for p in LINES if excuse(p.line) is None]


@dataclass
class Pi:
    """The staged Pi: its root, the PATH with the shims, the broker, Home Assistant's password."""

    root: Path
    path: str
    staged: Staged
    ha_password: str
    login_output: str

    def run(
        self, line: str, *, plain: bool, stdin: str = "", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": self.path,
            "HOME": str(self.root.parent),
            "LANG": "C.UTF-8",
            "MQTT_TOKEND_ROOT": str(self.root),
            "MQTT_TOKEND_SERVICE_USER": AGENT_USER,
        }
        user = ["setpriv", f"--reuid={PLAIN_USER}", f"--regid={PLAIN_USER}", "--clear-groups"]
        return subprocess.run(
            [*(user if plain else []), "bash", "-c", line],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root.parent,
            timeout=timeout,
            check=False,
        )


def shims(directory: Path, root: Path, port: int) -> str:
    directory.mkdir()
    (directory / "mqtt-tokend").symlink_to(root / "usr/local/bin/mqtt-tokend")
    scripts = {
        "sudo": '[ "$(id -u)" -eq 0 ] || { echo "sudo: not allowed here" >&2; exit 1; }\n'
        'while [ $# -gt 0 ]; do case $1 in *=*) export "$1"; shift ;; *) break ;; esac; done\n'
        'exec "$@"\n',
        **{
            c: f'exec /usr/bin/{c} -p {port} "$@"\n'
            for c in ("mosquitto_sub", "mosquitto_pub", "mosquitto_rr")
        },
    }
    for name, body in scripts.items():
        (directory / name).write_text(f"#!/bin/sh\n{body}")
        (directory / name).chmod(0o755)
    return f"{directory}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def own_like_a_pi(root: Path) -> None:
    """What the installer's chowns do on a host, with `nobody` as the agent's user."""
    etc = root / "etc/mqtt-tokend"
    for path, owner, mode in (
        (etc, f"root:{AGENT_GROUP}", 0o751),
        (etc / "config.toml", f"root:{AGENT_GROUP}", 0o640),
        (etc / "fernet.key", f"{AGENT_USER}:{AGENT_GROUP}", 0o440),
        (etc / "mqtt_password", f"{AGENT_USER}:{AGENT_GROUP}", 0o600),
        (root / "var/lib/mqtt-tokend", f"{AGENT_USER}:{AGENT_GROUP}", 0o700),
    ):
        user, group = owner.split(":")
        shutil.chown(path, user, group)
        path.chmod(mode)


def use_the_emulator(config: Path, emulator: SpotifyEmulator) -> None:
    text = config.read_text()
    text = text.replace('client_id = ""', f'client_id = "{DEMO_CLIENT_ID}"', 1)
    text = re.sub(r'(?m)^(accounts_url|api_url) = ".*"', rf'\1 = "{emulator.url}"', text)
    text = text.replace("127.0.0.1:8888/callback", f"127.0.0.1:{free_port()}/callback")
    config.write_text(text)


def login(pi: Pi) -> str:
    """`sudo mqtt-tokend auth`, as printed, with the emulator approving the URL."""
    process = subprocess.Popen(
        ["bash", "-c", "sudo mqtt-tokend auth"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": pi.path,
            "MQTT_TOKEND_ROOT": str(pi.root),
            "MQTT_TOKEND_SERVICE_USER": AGENT_USER,
        },
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        pytest.fail(f"`sudo mqtt-tokend auth` printed no URL: {process.communicate()}")
    out, err = process.communicate(approve(url) + "\n", timeout=60)
    assert process.returncode == 0, err
    return out + err


def wait_until_ok(pi: Pi) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = pi.run("sudo mqtt-tokend status --json", plain=False)
        if '"state": "ok"' in status.stdout and '"online": true' in status.stdout:
            return
        time.sleep(0.2)
    pytest.fail(f"the staged agent never reached ok: {status.stdout}{status.stderr}")


@pytest.fixture(scope="module")
def pi(snapshot: Path) -> Iterator[Pi]:
    home = Path(tempfile.mkdtemp(prefix="mqtt-tokend-pi-"))
    home.chmod(0o755)  # the agent's user and the plain user reach the staged files
    staged = Staged(home / "root", home / "broker")
    agent: subprocess.Popen[bytes] | None = None
    try:
        with SpotifyEmulator(token_lifetime=3600) as emulator:
            run_installer(
                snapshot, staged.root, "--python", SYSTEM_PYTHON, "--broker-restart", staged.restart
            )
            config = staged.root / "etc/mqtt-tokend/config.toml"
            rebase_config(config, staged.root, staged.port)
            use_the_emulator(config, emulator)
            own_like_a_pi(staged.root)
            made = Pi(
                staged.root,
                shims(home / "bin", staged.root, staged.port),
                staged,
                staged.credentials()["homeassistant"],
                "",
            )
            made.login_output = login(made)
            binary = staged.root / "opt/mqtt-tokend/venv/bin/mqtt-tokend"
            with (home / "agent.log").open("wb") as log:
                agent = subprocess.Popen(
                    [
                        "setpriv",
                        f"--reuid={AGENT_USER}",
                        f"--regid={AGENT_GROUP}",
                        "--clear-groups",
                        str(binary),
                        "--config",
                        str(config),
                        "run",
                    ],
                    stdout=log,
                    stderr=log,
                )
            wait_until_ok(made)
            yield made
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        staged.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_every_printed_line_is_run_or_excused() -> None:
    assert len(RUN) >= 10, [p.line for p in RUN]
    lines = {p.line for p in LINES}
    unused = [pattern for pattern in NOT_RUN if not any(re.search(pattern, line) for line in lines)]
    assert unused == [], "an excuse for a line no doc prints any more"


@pytest.mark.parametrize("printed", RUN, ids=[p.where for p in RUN])
def test_printed_command_works_as_printed(pi: Pi, printed: Printed) -> None:
    plain = not printed.line.startswith("sudo ") and "$(sudo" not in printed.line
    script = "\n".join([*printed.reads, printed.line])
    stdin = pi.ha_password + "\n" if printed.reads else ""
    if "Ctrl-C" in printed.line:  # runs until stopped: stop it after a few seconds
        result = pi.run(f"timeout 3 bash -c {shlex.quote(script)}", plain=plain, stdin=stdin)
        assert result.returncode == 124, result.stderr
        assert "lofi/spotify/health {" in result.stdout
        return
    # A request sent over MQTT must reach the agent (a publish the ACL drops exits 0 too):
    # its answer on response/<verb> is the proof.
    request = re.search(r"mosquitto_pub .*request/(\w+)", printed.line)
    answers = Peer(pi.staged.port, "homeassistant", pi.ha_password)
    try:
        if request:
            answers.connect()
            answers.subscribe(f"lofi/spotify/response/{request[1]}")
        result = pi.run(script, plain=plain, stdin=stdin)
        if request:
            assert answers.arrived(f"lofi/spotify/response/{request[1]}", timeout=WAIT)
    finally:
        answers.close()
    assert "Traceback" not in result.stderr
    if printed.line.startswith("mqtt-tokend status"):  # as a plain user: what it may read
        said = "may not read" in result.stderr and "run `sudo mqtt-tokend status`" in result.stderr
        assert result.returncode == 0 or (result.returncode == 1 and said), result.stderr
        return
    assert result.returncode == 0, f"{printed.line}\n{result.stdout}\n{result.stderr}"
    if "check; echo $?" in printed.line:
        assert result.stdout.startswith("OK: ") and result.stdout.endswith("\n0\n")


@pytest.mark.parametrize(
    ("config", "hint"),
    [
        ("/etc/mqtt-tokend/config.toml", "sudo systemctl start lofi-pi-token-manager.service"),
        ("/etc/mqtt-tokend/alice.toml", "sudo systemctl start lofi-pi-token-manager@alice.service"),
        ("/home/pi/tokend.toml", "mqtt-tokend --config /home/pi/tokend.toml run"),
    ],
    ids=["installed", "installed-account", "elsewhere"],
)
def test_the_login_says_how_to_start_the_agent(config: str, hint: str) -> None:
    """After `auth` the hint names the unit on an installed Pi (whose units are the host's,
    see NOT_RUN), `mqtt-tokend run` elsewhere; the staged login printed the latter."""
    settings = parse_config({"spotify": {"client_id": "x"}}, base_dir=Path("/"), environ={})
    assert start_command(dataclasses.replace(settings, path=Path(config))) == hint


def test_the_staged_login_printed_its_start_hint(pi: Pi) -> None:
    assert (
        f"if it is not running: mqtt-tokend --config {pi.root}/etc/mqtt-tokend/config.toml run"
        in (pi.login_output)
    )


def test_rotate_key_under_the_installed_ownership(pi: Pi) -> None:
    """`sudo mqtt-tokend rotate-key` (README's threat model, keygen's hint) works as printed
    with the key file 0440 and /etc/mqtt-tokend root's: the owner, group and mode stay."""
    key = pi.root / "etc/mqtt-tokend/fernet.key"
    before = key.read_text().splitlines()
    result = pi.run("sudo mqtt-tokend rotate-key", plain=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the agent re-published the token with the new key" in result.stdout
    info = key.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o440, pwd.getpwnam(AGENT_USER).pw_uid)
    assert key.read_text().splitlines()[1:] == before


def test_keygen_under_the_installed_ownership_says_one_sentence(pi: Pi) -> None:
    key = pi.root / "etc/mqtt-tokend/fernet.key"
    before = key.read_bytes()
    exists = pi.run("sudo mqtt-tokend keygen", plain=False)
    assert exists.returncode != 0 and "already exists" in exists.stderr
    forced = pi.run("sudo mqtt-tokend keygen --force", plain=False)
    assert forced.returncode == 1
    assert "Traceback" not in forced.stderr and len(forced.stderr.strip().splitlines()) == 1
    assert "permission denied" in forced.stderr and "sudo mqtt-tokend rotate-key" in forced.stderr
    assert key.read_bytes() == before
