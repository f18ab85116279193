"""The `auth` command: the headless login, from the URL it prints to the redirect pasted back."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from mqtt_tokend.adapters import login, loopback
from mqtt_tokend.cli.commands import _store, auth_line
from mqtt_tokend.config import Config
from mqtt_tokend.contract.wording import SERVICE, user_name
from mqtt_tokend.errors import InputError

INSTALLED_DIR = Path("/etc/mqtt-tokend")  # where setup_auto_tokens.sh puts the configs


def authorize(
    config: Config,
    *,
    listen: bool = False,
    redirect_file: str | None = None,
    redirect_url: str | None = None,
    timeout: float = 600.0,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Headless login: print the URL, take the redirect back, store and confirm the tokens."""
    from mqtt_tokend.daemon.wiring import make_spotify

    if redirect_url is not None:  # on the command line, the code and state are in /proc
        raise InputError(
            "--redirect-url puts the login's code on the command line, where every process "
            "can read it: use --redirect-file PATH (or --redirect-file - and paste it)"
        )
    if redirect_file is not None:
        redirect_url = _read_redirect(redirect_file, stdin)
    store, cipher = _store(config)
    store.ensure_dir()
    spotify = make_spotify(config)
    try:
        pending = login.load_pending(store, cipher, now=time.time()) if redirect_url else None
        used = store.load_session().get("used_login")
        if pending is None and redirect_url is not None:
            # Name what was pasted (a used or expired redirect), never start a login unasked.
            login.code_from_redirect(redirect_url, expected_state=None, used_state=used)
            raise InputError(f"no login is in progress: start one with `{auth_line(config)}`")
        if pending is None:
            pending = login.begin(spotify, config.spotify, now=time.time())
            login.save_pending(store, cipher, pending)
            print("Open this URL on any device with a browser and approve access:", file=err)
            print(pending.url, file=out, flush=True)
        if redirect_url is not None:
            pasted = redirect_url
        elif listen:
            pasted = loopback.listen_for_redirect(
                pending.redirect_uri,
                timeout=timeout,
                on_ready=lambda where: _tunnel_hint(where, err),
            )
        else:
            print(
                "Your browser then goes to an address that may not load; copy that whole "
                "address from the address bar and paste it here:",
                file=err,
                flush=True,
            )
            pasted = stdin.readline()
            if not pasted:
                raise InputError(
                    "no redirect URL was given; finish this login later with "
                    f"`{auth_line(config)} --redirect-file -` (paste the address, then Enter)"
                )
        code = login.code_from_redirect(pasted, expected_state=pending.state, used_state=used)
        profile = login.complete(pending, code, spotify=spotify, store=store)
        login.clear_pending(store)
    finally:
        spotify.close()
    who = user_name(profile) or "an unknown user"
    print(f"Logged in to Spotify as {who}. Tokens stored in {store.state_dir}.", file=err)
    print(
        f"The running agent picks them up by itself; if it is not running: {start_command(config)}",
        file=err,
    )
    return 0


def start_command(config: Config) -> str:
    """How this config's agent is started: its systemd unit on an installed Pi (a config in
    /etc/mqtt-tokend), else `mqtt-tokend run` in the foreground."""
    path = config.path
    if path is not None and path.parent == INSTALLED_DIR and path.suffix == ".toml":
        unit = SERVICE if path.stem == "config" else f"{SERVICE}@{path.stem}"
        return f"sudo systemctl start {unit}.service"
    return f"mqtt-tokend{f' --config {path}' if path else ''} run"


def _read_redirect(path: str, stdin: TextIO) -> str:
    """The redirect URL from a file, or from standard input for `-`."""
    if path == "-":
        return stdin.readline()
    try:
        return Path(path).read_text(encoding="utf-8")[:8192]
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the redirect URL from {path}: {err}") from None


def _tunnel_hint(where: str, err: TextIO) -> None:
    port = where.rsplit(":", 1)[-1]
    print(
        f"Waiting for the browser on {where}. From the device with the browser, tunnel first: "
        f"ssh -L {port}:127.0.0.1:{port} <user>@<this-pi>",
        file=err,
        flush=True,
    )
