"""The emulator as a tool: its --help, every control line it prints, the player and catalog,
ageing a login and revoking old access tokens on refresh."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from mqtt_tokend.dev.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    SpotifyEmulator,
)
from mqtt_tokend.dev.emulator.webapi import APP_ENDPOINTS, DEMO_TRACKS
from tests.unit.emulator.helpers import pkce_login, pkce_refresh

CLI = [sys.executable, "-m", "mqtt_tokend"]


def emulator_help() -> str:
    done = subprocess.run(
        [*CLI, "emulator", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def test_help_shows_the_options_the_clients_and_the_control_endpoints() -> None:
    text = emulator_help()
    for option in ("--port", "--token-lifetime", "--refresh-token-max-age", "--revoke-on-refresh"):
        assert option in text
    assert DEMO_CLIENT_ID in text and DEMO_CONFIDENTIAL_CLIENT_ID in text
    assert DEMO_CLIENT_SECRET in text
    for path in ("revoke", "age", "expire", "faults", "config", "stats"):
        assert f"$URL/_emulator/{path}" in text
    assert "see `mqtt-tokend emulator --help`" not in text  # no longer points back to itself


@pytest.fixture
def options() -> list[str]:
    return []


@pytest.fixture
def running(options: list[str]) -> Iterator[str]:
    """`mqtt-tokend emulator` as a process; yields the URL= it prints."""
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", *options], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = None
        for _ in range(6):
            found = re.search(r"URL=(\S+)", process.stdout.readline())
            if found:
                url = found.group(1)
                break
        assert url, "the emulator printed no URL= line"
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_every_control_line_in_the_help_works(running: str, http: requests.Session) -> None:
    """Each curl line of --help, run by a shell with URL set, gets a JSON answer, not an error."""
    lines = [line.strip() for line in emulator_help().splitlines() if "curl " in line]
    assert len(lines) == 7
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            env={"URL": running, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert done.stdout.startswith("{") and '"error"' not in done.stdout, (line, done.stdout)
    config = http.get(f"{running}/_emulator/config", timeout=5).json()
    assert config["revoke_on_refresh"] is True


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], {"revoke_on_refresh": False, "refresh_token_max_age": 180 * 86400.0}),
        (
            ["--revoke-on-refresh", "--refresh-token-max-age", "60", "--token-lifetime", "5"],
            {"revoke_on_refresh": True, "refresh_token_max_age": 60.0, "token_lifetime": 5.0},
        ),
    ],
    ids=["defaults", "options"],
)
def test_the_options_reach_the_running_emulator(
    running: str, http: requests.Session, expected: dict[str, object]
) -> None:
    config = http.get(f"{running}/_emulator/config", timeout=5).json()
    assert expected.items() <= config.items()


@pytest.fixture
def emulator() -> Iterator[SpotifyEmulator]:
    with SpotifyEmulator() as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ageing_a_login_past_six_months_ends_it(
    emulator: SpotifyEmulator, http: requests.Session
) -> None:
    tokens = pkce_login(emulator, http)
    young = pkce_refresh(emulator, http, tokens["refresh_token"])
    assert young.status_code == 200
    assert http.post(f"{emulator.url}/_emulator/age", json={"days": 179}).ok
    older = pkce_refresh(emulator, http, young.json()["refresh_token"])
    assert older.status_code == 200  # 179 days: still inside six months
    assert http.post(f"{emulator.url}/_emulator/age", json={"days": 2}).ok
    dead = pkce_refresh(emulator, http, older.json()["refresh_token"])
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    fresh = pkce_login(emulator, http)  # a new login starts a new six months
    assert pkce_refresh(emulator, http, fresh["refresh_token"]).status_code == 200


@pytest.mark.parametrize("revoke", [False, True], ids=["default", "revoke-on-refresh"])
def test_old_access_tokens_answer_401_after_a_refresh_only_when_asked(
    emulator: SpotifyEmulator, http: requests.Session, revoke: bool
) -> None:
    emulator.revoke_on_refresh = revoke
    tokens = pkce_login(emulator, http)
    other = pkce_login(emulator, http)  # another login is not touched
    new = pkce_refresh(emulator, http, tokens["refresh_token"]).json()
    me = f"{emulator.url}/v1/me"
    old_status = http.get(me, headers=_bearer(tokens["access_token"]), timeout=5).status_code
    assert old_status == (401 if revoke else 200)
    assert http.get(me, headers=_bearer(new["access_token"]), timeout=5).status_code == 200
    assert http.get(me, headers=_bearer(other["access_token"]), timeout=5).status_code == 200


def test_play_pause_and_the_player_state(emulator: SpotifyEmulator, http: requests.Session) -> None:
    headers = _bearer(pkce_login(emulator, http)["access_token"])
    api = f"{emulator.url}/v1/me/player"
    kitchen = http.get(f"{api}/devices", headers=headers, timeout=5).json()["devices"][1]["id"]
    uri = DEMO_TRACKS[1]["uri"]
    played = http.put(
        f"{api}/play", params={"device_id": kitchen}, json={"uris": [uri]}, headers=headers
    )
    assert played.status_code == 204
    state = http.get(api, headers=headers, timeout=5).json()
    assert state["is_playing"] and state["device"]["id"] == kitchen
    assert state["item"]["uri"] == uri
    assert http.put(f"{api}/pause", headers=headers, timeout=5).status_code == 204
    assert http.get(api, headers=headers, timeout=5).json()["is_playing"] is False
    unknown = http.put(f"{api}/play", params={"device_id": "nope"}, headers=headers, timeout=5)
    assert unknown.status_code == 404
    assert http.get(f"{api}/play", headers=headers, timeout=5).status_code == 405


@pytest.mark.parametrize(
    ("path", "app_allowed"),
    [
        ("/v1/search?q=tram&type=track", True),
        (f"/v1/tracks/{DEMO_TRACKS[0]['id']}", True),
        ("/v1/me", False),
        ("/v1/me/player", False),
        ("/v1/me/player/devices", False),
    ],
    ids=["search", "track", "me", "player", "devices"],
)
def test_an_app_token_reaches_the_catalog_only(
    emulator: SpotifyEmulator, http: requests.Session, path: str, app_allowed: bool
) -> None:
    app = http.post(
        f"{emulator.url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CLIENT_SECRET),
        timeout=5,
    ).json()["access_token"]
    answer = http.get(f"{emulator.url}{path}", headers=_bearer(app), timeout=5)
    assert answer.status_code == (200 if app_allowed else 403)
    assert len(APP_ENDPOINTS) == 2


def test_search_finds_by_words(emulator: SpotifyEmulator, http: requests.Session) -> None:
    headers = _bearer(pkce_login(emulator, http)["access_token"])
    found = http.get(
        f"{emulator.url}/v1/search", params={"q": "late tram", "type": "track"}, headers=headers
    ).json()
    assert [t["name"] for t in found["tracks"]["items"]] == ["Late Tram"]
    bad = http.get(f"{emulator.url}/v1/search", params={"q": "x"}, headers=headers, timeout=5)
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"days": -1}, "non-negative"),
        ({"days": "old"}, "non-negative"),
        ({"seconds": 1e308, "days": 1e308}, "non-negative"),
        ({"weeks": 1}, "unknown keys"),
        ({"revoke_on_refresh": "yes"}, "true or false"),
    ],
    ids=["negative", "text", "infinite", "unknown-key", "config-not-bool"],
)
def test_age_and_config_refuse_nonsense(
    emulator: SpotifyEmulator, http: requests.Session, body: dict[str, object], words: str
) -> None:
    path = "config" if "revoke_on_refresh" in body else "age"
    answer = http.post(f"{emulator.url}/_emulator/{path}", json=body, timeout=5)
    assert answer.status_code == 400 and words in answer.json()["error"]
    assert emulator.revoke_on_refresh is False
