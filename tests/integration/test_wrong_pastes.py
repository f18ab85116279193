"""Wrong pastes and wrong asks get the sentence that fits them, through the real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mqtt_tokend.adapters.store import PENDING_FILE
from mqtt_tokend.dev.emulator import SpotifyEmulator
from mqtt_tokend.errors import EX_CONFIG
from tests.integration.conftest import approve, cli


def start_login(config: Path) -> str:
    """`auth` with nothing on standard input: the login stays pending; its URL is returned."""
    first = cli(config, "auth", stdin="")
    assert first.returncode == 1 and "--redirect-file -" in first.stderr
    return first.stdout.strip()


def paste(config: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`auth --redirect-file -`: the redirect on standard input, never on the command line."""
    return cli(config, "auth", "--redirect-file", "-", stdin=text + "\n")


def test_an_already_used_redirect_says_so_and_starts_no_login(config_file: Path) -> None:
    redirect = approve(start_login(config_file))
    assert paste(config_file, redirect).returncode == 0
    again = paste(config_file, redirect)
    assert again.returncode == 1
    assert "this login was already used" in again.stderr
    assert "Open this URL" not in again.stderr, "a new login was started unasked"
    assert not (config_file.parent / "state" / PENDING_FILE).exists()


def test_the_login_link_pasted_back_is_named(config_file: Path) -> None:
    url = start_login(config_file)
    result = paste(config_file, url)
    assert result.returncode == 1
    assert "this is the login link itself" in result.stderr


def test_a_cut_off_redirect_is_named(config_file: Path) -> None:
    redirect = approve(start_login(config_file))
    result = paste(config_file, redirect[: redirect.index("state=") + 9])
    assert result.returncode == 1
    assert "the pasted address is cut off" in result.stderr
    assert "the same login link stays valid" in result.stderr
    assert "`mqtt-tokend auth --redirect-file -`" in result.stderr
    assert paste(config_file, redirect).returncode == 0  # what it says works


def test_a_refused_code_keeps_the_same_link_valid_and_says_so(
    config_file: Path, emulator: SpotifyEmulator
) -> None:
    """Issue 17: a wrong paste meant starting `auth` again with a new URL."""
    url = start_login(config_file)
    redirect = approve(url)
    state = redirect[redirect.index("state=") :].split("&")[0]
    result = paste(config_file, f"http://127.0.0.1/callback?code=AQBjunkjunkjunk&{state}")
    assert result.returncode == 1
    assert "the same login link stays valid" in result.stderr
    assert emulator.calls("authorization_code") == 1  # Spotify refused the junk code
    again = approve(url)  # the same link, opened again
    assert paste(config_file, again).returncode == 0


def test_yes_is_not_sent_to_spotify(config_file: Path, emulator: SpotifyEmulator) -> None:
    result = cli(config_file, "auth", stdin="yes\n")
    assert result.returncode == 1
    assert "not a login address or code" in result.stderr
    assert emulator.calls("authorization_code") == 0


def test_get_token_app_without_a_client_secret_fails_at_once(config_file: Path) -> None:
    result = cli(config_file, "get-token", "--app", "--timeout", "30", timeout=10)
    assert result.returncode == EX_CONFIG
    assert "an app token needs spotify.client_secret" in result.stderr
