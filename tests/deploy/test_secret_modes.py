"""No secret file of an install is ever readable by others, not even for a moment: the installer
run under umask 022 (a login shell's) is traced with strace, and every file it creates is checked
with the mode it was created with (the open's mode less the umask of that process at that
instant), temporaries and scratch copies included; its final modes are checked too. A poll loop
racing a few installs is an extra, weaker, check that needs no strace."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.deploy.conftest import INSTALLER_TIMEOUT

have_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd is not installed"
)
# Secret files by name (a temporary is named after its target), with the permission bits they
# may have at any moment: the key and config are for a group, the rest for their owner only.
SECRETS = {
    "passwd": 0o600,
    "credentials": 0o600,
    "mqtt_password": 0o600,
    "fernet.key": 0o640,
    "config.toml": 0o640,
}
FINAL = {
    "etc/mqtt-tokend/fernet.key": 0o440,
    "etc/mqtt-tokend/config.toml": 0o640,
    "etc/mqtt-tokend/mqtt_password": 0o600,
    "etc/mosquitto/mqtt-tokend/passwd": 0o600,
    "etc/mosquitto/mqtt-tokend/credentials": 0o600,
}
SYSCALLS = "openat,open,creat,umask,clone,clone3,fork,vfork,chmod,fchmodat"
CREATE = re.compile(r'^(\d+) +(?:openat\(AT_FDCWD, |open\(|creat\()"([^"]+)", ([A-Z_|]+), (0\d+)\)')
CHMOD = re.compile(r'^(\d+) +(?:chmod\(|fchmodat\(AT_FDCWD, )"([^"]+)", (0\d+)')
UMASK = re.compile(r"^(\d+) +umask\((0\d*)\)")
SPAWN = re.compile(r"^(\d+) +(?:<\.\.\. )?(?:clone3?|v?fork)\b.*= (\d+)$")


def secret_name(path: str) -> str | None:
    name = Path(path).name
    for suffix in (".new", ".tmp"):
        name = name.removesuffix(suffix)
    return name if name in SECRETS else None


def created_modes(trace: str, first_umask: int) -> list[tuple[str, int, int]]:
    """(path, mode at creation or chmod, allowed bits) for every secret file in the trace. A
    child starts with its parent's umask at the fork; a file's mode is the open's less it."""
    lines = trace.splitlines()
    parent: dict[str, str] = {}
    for line in lines:
        if spawned := SPAWN.match(line):
            parent[spawned[2]] = spawned[1]
    umask: dict[str, int] = {}

    def of(pid: str) -> int:
        if pid not in umask:
            umask[pid] = of(parent[pid]) if pid in parent else first_umask
        return umask[pid]

    seen: list[tuple[str, int, int]] = []
    for line in lines:
        if changed := UMASK.match(line):
            of(changed[1])
            umask[changed[1]] = int(changed[2], 8)
        elif (created := CREATE.match(line)) and "O_CREAT" in created[3]:
            if (name := secret_name(created[2])) and "ENOENT" not in line:
                mode = int(created[4], 8) & ~of(created[1])
                seen.append((created[2], mode, SECRETS[name]))
        elif (changed_mode := CHMOD.match(line)) and (name := secret_name(changed_mode[2])):
            seen.append((changed_mode[2], int(changed_mode[3], 8), SECRETS[name]))
    return seen


def install_under_umask_022(
    snapshot: Path, root: Path, *wrapper: str
) -> subprocess.CompletedProcess[str]:
    """The installer as a login shell would start it (umask 022). The broker step writes its
    files for real; its restart succeeds without starting a broker (a traced one would keep
    strace waiting), so nothing is rolled back."""
    installer = [str(snapshot / "deploy/setup_auto_tokens.sh"), "--root", str(root), "--no-venv"]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_MQTT_PASSWORD")}
    return subprocess.run(
        [
            *wrapper,
            "bash",
            "-c",
            'umask 022; exec bash "$@"',
            "-",
            *installer,
            "--broker-restart",
            "true",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=INSTALLER_TIMEOUT,
        check=False,
    )


@have_mosquitto
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_every_secret_file_is_created_with_its_final_mode(snapshot: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    trace = tmp_path / "trace"
    strace = ["strace", "-f", "-qq", "-e", f"trace={SYSCALLS}", "-o", str(trace)]
    result = install_under_umask_022(snapshot, root, *strace)
    assert result.returncode == 0, result.stdout + result.stderr

    seen = created_modes(trace.read_text(), first_umask=0o022)
    names = {secret_name(path) for path, _mode, _allowed in seen}
    assert names == set(SECRETS), f"the trace shows every secret being written: {names}"
    loose = [f"{path} {mode:04o}" for path, mode, allowed in seen if mode & ~allowed]
    assert loose == [], "readable by others for a moment"
    for path, mode in FINAL.items():
        assert stat.S_IMODE((root / path).stat().st_mode) == mode, path


def test_the_trace_reader_sees_a_loose_file() -> None:
    """The check above can fail: a 0644 password file, and one made under umask 022."""
    trace = (
        "10 umask(077) = 022\n10 clone(child_stack=NULL) = 11\n11 umask(022) = 077\n"
        '11 openat(AT_FDCWD, "/x/passwd.new", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3\n'
        '10 openat(AT_FDCWD, "/x/credentials", O_WRONLY|O_CREAT|O_APPEND, 0666) = 3\n'
        '10 chmod("/x/mqtt_password", 0644) = 0\n'
    )
    assert created_modes(trace, first_umask=0o022) == [
        ("/x/passwd.new", 0o644, 0o600),
        ("/x/credentials", 0o600, 0o600),
        ("/x/mqtt_password", 0o644, 0o600),
    ]


@have_mosquitto
def test_a_poll_loop_racing_installs_never_reads_a_secret(snapshot: Path, tmp_path: Path) -> None:
    """The extra check: a thread stats every file under the staged roots as fast as it can while
    five installs run; no secret ever shows a bit beyond what it may have."""
    roots = [tmp_path / f"root{i}" for i in range(5)]
    done = threading.Event()
    loose: set[str] = set()
    looks = 0

    def watch() -> None:
        nonlocal looks
        while not done.is_set():
            for root in roots:
                for path in root.rglob("*") if root.exists() else ():
                    name = secret_name(str(path))
                    try:
                        mode = stat.S_IMODE(path.lstat().st_mode)
                    except FileNotFoundError:
                        continue
                    looks += 1
                    if name and mode & ~SECRETS[name]:
                        loose.add(f"{path} {mode:04o}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for root in roots:
            result = install_under_umask_022(snapshot, root)
            assert result.returncode == 0, result.stdout + result.stderr
    finally:
        done.set()
        watcher.join()
    assert looks > 0
    assert loose == set()
