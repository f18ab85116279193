"""Headless login: PKCE, the pending login on disk, the loopback listener (the pasted redirect:
test_auth_redirect.py)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.login import (
    PENDING_FILE,
    PENDING_MAX_AGE,
    Authorization,
    begin,
    clear_pending,
    complete,
    load_pending,
    save_pending,
)
from mqtt_tokend.adapters.loopback import listen_for_redirect
from mqtt_tokend.adapters.spotify import SpotifyClient
from mqtt_tokend.adapters.store import SESSION_FILE, TokenStore
from mqtt_tokend.config import SpotifyConfig
from mqtt_tokend.core.oauth import code_from_redirect, pkce_pair, state_digest
from mqtt_tokend.errors import InputError
from tests.fakes import FakeSpotify

NOW = 1_800_000_000.0
STATE = "expected-state-Zx81"
REDIRECT = "http://127.0.0.1:8888/callback"
UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]+$")


def _client(secret: str = "") -> SpotifyClient:
    return SpotifyClient(
        client_id="client-id",
        client_secret=secret,
        accounts_url="https://accounts.test",
        api_url="https://api.test",
    )


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_pkce_pair_follows_rfc_7636() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert UNRESERVED.match(verifier)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert "=" not in challenge
    assert len(challenge) == 43


def test_pkce_pairs_are_fresh() -> None:
    verifiers = {pkce_pair()[0] for _ in range(20)}
    assert len(verifiers) == 20


def test_begin_pkce_puts_the_challenge_in_the_url() -> None:
    config = SpotifyConfig(client_id="client-id", redirect_uri=REDIRECT)
    authorization = begin(_client(), config, now=NOW)
    query = _query(authorization.url)
    assert authorization.code_verifier is not None
    digest = hashlib.sha256(authorization.code_verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == authorization.state
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == " ".join(config.scopes)
    assert authorization.redirect_uri == REDIRECT
    assert authorization.created_at == NOW
    # The verifier is the secret half: it never goes into the URL.
    assert authorization.code_verifier not in authorization.url


def test_begin_confidential_has_no_pkce() -> None:
    config = SpotifyConfig(client_id="client-id", client_secret="s3cret", redirect_uri=REDIRECT)
    authorization = begin(_client("s3cret"), config, now=NOW)
    query = _query(authorization.url)
    assert authorization.code_verifier is None
    assert "code_challenge" not in query
    assert "code_challenge_method" not in query
    assert query["state"] == authorization.state
    assert "s3cret" not in authorization.url


def test_begin_uses_a_new_state_each_time() -> None:
    config = SpotifyConfig(client_id="client-id")
    states = {begin(_client(), config, now=NOW).state for _ in range(10)}
    assert len(states) == 10


def test_authorization_repr_hides_state_and_verifier() -> None:
    config = SpotifyConfig(client_id="client-id")
    authorization = begin(_client(), config, now=NOW)
    assert authorization.code_verifier is not None
    assert authorization.state not in repr(authorization).replace(authorization.url, "")
    assert authorization.code_verifier not in repr(authorization)


@pytest.fixture
def authorization() -> Authorization:
    config = SpotifyConfig(client_id="client-id", redirect_uri=REDIRECT)
    return begin(_client(), config, now=NOW)


def test_pending_round_trip(
    store: TokenStore, cipher: TokenCipher, authorization: Authorization
) -> None:
    assert load_pending(store, cipher, now=NOW) is None
    save_pending(store, cipher, authorization)
    assert load_pending(store, cipher, now=NOW + 60) == authorization
    clear_pending(store)
    assert load_pending(store, cipher, now=NOW + 60) is None
    clear_pending(store)  # twice is fine


def test_pending_is_encrypted_on_disk(
    store: TokenStore, cipher: TokenCipher, authorization: Authorization
) -> None:
    save_pending(store, cipher, authorization)
    path = store.path(PENDING_FILE)
    raw = path.read_text()
    assert authorization.code_verifier is not None
    assert authorization.code_verifier not in raw
    assert authorization.state not in raw  # not even inside the authorize URL
    assert json.loads(raw)["redirect_uri"] == REDIRECT
    assert path.stat().st_mode & 0o077 == 0


def test_pending_too_old_is_none(
    store: TokenStore, cipher: TokenCipher, authorization: Authorization
) -> None:
    save_pending(store, cipher, authorization)
    assert load_pending(store, cipher, now=NOW + PENDING_MAX_AGE - 1) is not None
    assert load_pending(store, cipher, now=NOW + PENDING_MAX_AGE + 1) is None


def test_pending_with_wrong_key_is_none(store: TokenStore, authorization: Authorization) -> None:
    save_pending(store, TokenCipher([generate_key()]), authorization)
    assert load_pending(store, TokenCipher([generate_key()]), now=NOW) is None


@pytest.mark.parametrize(
    "content",
    [b"{broken", b"[]", b'{"url": "x"}', b'{"url": 1, "redirect_uri": 2, "secret": "zzz"}'],
    ids=["truncated", "array", "incomplete", "garbage-secret"],
)
def test_pending_corrupt_is_none(store: TokenStore, cipher: TokenCipher, content: bytes) -> None:
    store.ensure_dir()
    store.path(PENDING_FILE).write_bytes(content)
    assert load_pending(store, cipher, now=NOW) is None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_listen_for_redirect_returns_the_full_url() -> None:
    port = _free_port()
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    ready = threading.Event()
    announced: list[str] = []
    result: list[str] = []
    errors: list[BaseException] = []

    def on_ready(where: str) -> None:
        announced.append(where)
        ready.set()

    def serve() -> None:
        try:
            result.append(listen_for_redirect(redirect_uri, timeout=10, on_ready=on_ready))
        except BaseException as err:
            errors.append(err)
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5), "the listener never became ready"
    assert not errors, errors

    status, _ = _get(port, "/favicon.ico")
    assert status == 404
    status, _ = _get(port, "/other?code=x&state=y")
    assert status == 404
    status, body = _get(port, f"/callback?code=AQBcode&state={STATE}")
    assert status == 200
    assert b"close this tab" in body

    thread.join(5)
    assert not thread.is_alive()
    assert not errors, errors
    assert announced == [f"127.0.0.1:{port}"]
    assert result == [f"{redirect_uri}?code=AQBcode&state={STATE}"]
    assert code_from_redirect(result[0], expected_state=STATE) == "AQBcode"


def test_listen_for_redirect_times_out_with_a_clear_message() -> None:
    port = _free_port()
    with pytest.raises(InputError, match="no browser reached"):
        listen_for_redirect(f"http://127.0.0.1:{port}/callback", timeout=0.01)
    # The port is released afterwards, so a second attempt can listen again.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_listen_for_redirect_port_in_use_is_input_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen_for_redirect(f"http://127.0.0.1:{port}/callback", timeout=0.01)


@pytest.mark.parametrize(
    "damage",
    ["not json", "no secret", "secret of another key", "created_at text", "created_at bool"],
)
def test_an_unusable_pending_login_is_kept_aside(
    store: TokenStore,
    cipher: TokenCipher,
    authorization: Authorization,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    save_pending(store, cipher, authorization)
    path = store.path(PENDING_FILE)
    record = json.loads(path.read_text())
    if damage == "not json":
        path.write_text("{cut")
    else:
        if damage == "no secret":
            del record["secret"]
        elif damage == "secret of another key":
            record["secret"] = TokenCipher([generate_key()]).encrypt_json({"state": "s"})
        elif damage == "created_at text":
            record["created_at"] = "yesterday"
        else:
            record["created_at"] = True
        path.write_text(json.dumps(record))
    assert load_pending(store, cipher, now=NOW + 60) is None
    assert not path.exists()
    assert path.with_name(f"{PENDING_FILE}.corrupt").exists()
    assert "is not a usable login in progress" in caplog.text
    assert authorization.state not in caplog.text


def test_an_old_pending_login_is_ignored_not_kept_aside(
    store: TokenStore, cipher: TokenCipher, authorization: Authorization
) -> None:
    save_pending(store, cipher, authorization)
    assert load_pending(store, cipher, now=NOW + 7200) is None
    assert store.path(PENDING_FILE).exists()


def test_authorization_repr_hides_the_url_and_the_webhook_id() -> None:
    webhook = "https://ha.example/api/webhook/SECRET-WEBHOOK-ID-123"
    config = SpotifyConfig(client_id="client-id", redirect_uri=webhook)
    authorization = begin(_client(), config, now=NOW)
    shown = repr(authorization)
    for secret in (authorization.url, authorization.state, "SECRET-WEBHOOK-ID-123", "state="):
        assert secret not in shown
    assert str(NOW) in shown


def test_a_finished_login_remembers_its_state_digest_only(
    store: TokenStore, authorization: Authorization
) -> None:
    fake = FakeSpotify()
    complete(authorization, "AQBcode", spotify=fake, store=store, now=lambda: NOW)  # type: ignore[arg-type]
    session = store.load_session()
    assert session["used_login"] == state_digest(authorization.state)
    assert authorization.state not in store.path(SESSION_FILE).read_text()
