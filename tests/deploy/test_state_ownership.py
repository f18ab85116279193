"""`auth` run as root on an installed Pi leaves root-owned 0600 token files in the agent's
state directory: the agent (another user) must be told the exact chown, not to restore a key or
log in again. Runs the reader as a real other user (needs root to switch)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mqtt_tokend.contract.wording import auth_instructions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

READER = """
import sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from mqtt_tokend.adapters.store import read_json
from mqtt_tokend.errors import StoreError
try:
    read_json(Path(sys.argv[1]))
except StoreError as err:
    print(err)
"""


def stage_reader(into: Path, script: str = READER) -> Path:
    """Readable copies of the modules the reader loads from outside the standard library (the
    package, cryptography...): the checkout, and its .venv, may sit in a 0700 home directory
    that another user cannot enter."""
    listing = (
        script.split("try:", maxsplit=1)[0]
        + "for name, module in sorted(sys.modules.items()):\n"
        + "    if '.' not in name and getattr(module, '__file__', None):\n"
        + "        print(module.__file__)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", listing, "-", "."],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    into.mkdir()
    stdlib = [Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")]
    for origin in (Path(line).resolve() for line in loaded):
        if any(origin.is_relative_to(lib) for lib in stdlib):
            continue
        if origin.name == "__init__.py":
            shutil.copytree(
                origin.parent,
                into / origin.parent.name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        else:
            shutil.copy2(origin, into / origin.name)
    for path in [into, *into.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return into


def read_as(
    user: pwd.struct_passwd, path: Path, staged: Path, script: str = READER
) -> subprocess.CompletedProcess[str]:
    """The store's reader (or `script`) run as `user`, by the real interpreter (not the venv's
    link inside the checkout) on the staged copies; prints the StoreError, if any."""
    command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    python = os.path.realpath(sys.executable)
    return subprocess.run(
        [*command, python, "-I", "-c", script, str(path), str(staged)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_root_owned_state_file_names_the_chown_that_fixes_it(broker_dir: Path) -> None:
    agent = pwd.getpwnam("nobody")
    state = broker_dir / "state"  # broker_dir: a 0755 scratch directory others can traverse
    state.mkdir()
    os.chown(state, agent.pw_uid, agent.pw_gid)
    tokens = state / "spotify_tokens.json"
    tokens.write_text("{}")  # written by root, as `auth` run with plain sudo does
    tokens.chmod(0o600)
    staged = stage_reader(broker_dir / "python")
    result = read_as(agent, tokens, staged)
    group = grp.getgrgid(agent.pw_gid).gr_name
    assert f"sudo chown nobody:{group} {tokens}" in result.stdout, result.stdout + result.stderr
    subprocess.run(["chown", f"nobody:{group}", str(tokens)], check=True, timeout=10)
    again = read_as(agent, tokens, staged)
    assert again.stdout == "", "after the printed chown the agent reads the file"


def test_the_printed_login_command_is_the_installed_wrapper() -> None:
    """What the notice, alert and Home Assistant print on an installed Pi; the wrapper itself
    is run on a staged install in test_installer.py."""
    text = auth_instructions("/etc/mqtt-tokend/config.toml")
    assert "On the Pi run: sudo mqtt-tokend auth " in text
    other = auth_instructions("/etc/mqtt-tokend/alice.toml")
    assert "sudo mqtt-tokend --config /etc/mqtt-tokend/alice.toml auth" in other


SESSION_READER = """
import logging, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.errors import StoreError
try:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    state = Path(sys.argv[1])
    store = TokenStore(state, cipher=TokenCipher.from_file(state / "fernet.key"))
    print(store.load_session())
except StoreError as err:
    print(err)
"""


def test_a_root_owned_session_file_stays_where_its_chown_hint_names_it(broker_dir: Path) -> None:
    """The agent warns with the chown for spotify_session.json: the file must still be there
    under that name (it is another user's, not corrupt), and the printed chown fixes it."""
    agent = pwd.getpwnam("nobody")
    group = grp.getgrgid(agent.pw_gid).gr_name
    state = broker_dir / "state"
    state.mkdir()
    subprocess.run(
        [sys.executable, "-m", "mqtt_tokend", "keygen", "--key-file", str(state / "fernet.key")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    os.chown(state / "fernet.key", agent.pw_uid, agent.pw_gid)
    os.chown(state, agent.pw_uid, agent.pw_gid)
    session = state / "spotify_session.json"
    session.write_text('{"user": "alice"}')  # written by root, as `auth` run with plain sudo does
    session.chmod(0o600)
    staged = stage_reader(broker_dir / "python", SESSION_READER)
    first = read_as(agent, state, staged, SESSION_READER)
    hint = f"sudo chown nobody:{group} {session}"
    assert hint in first.stderr, first.stderr
    assert session.exists() and not list(state.glob("*.corrupt")), "the named file stays"
    subprocess.run(hint.split()[1:], check=True, timeout=10)
    again = read_as(agent, state, staged, SESSION_READER)
    assert again.stdout.strip() == "{'user': 'alice'}", again.stderr
