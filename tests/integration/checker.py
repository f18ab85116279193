"""Checks every message a test's agent publishes against the MQTT contract in `topics/`."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType

from cryptography.fernet import Fernet, MultiFernet

from mqtt_tokend.contract.topics import Topics
from tests.contract import Contract
from tests.integration.watch import Seen, Watcher


class KeyRing:
    """Every Fernet key a key file has held during a test (the agent's file may rotate).

    The ring learns a key only by reading the file while it holds that key. The checker reads it
    on every token message, but on its own subscriber's thread: a test that replaces the file as
    soon as its own subscriber sees a token can win that race, so such a test calls
    `ContractChecker.remember_keys()` first. Every look reads the file: a cached (mtime, size)
    signature missed a replacement, as keys have one size and a new file can reuse the inode and
    the timestamp tick.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: list[bytes] = []

    def refresh(self) -> None:
        """Add the keys the file holds now."""
        try:
            lines = self.path.read_text(encoding="ascii").split()
        except (OSError, UnicodeDecodeError):
            return  # not there yet, or replaced right now: the next look sees it
        with self._lock:
            for line in lines:
                key = line.encode()
                if not line.startswith("#") and key not in self._keys:
                    self._keys.append(key)

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt with any key seen so far."""
        with self._lock:
            keys = list(self._keys)
        if not keys:
            raise ValueError(f"no key was ever seen in {self.path}")
        return MultiFernet([Fernet(key) for key in keys]).decrypt(token)


class ContractChecker:
    """Records `<base>/#` as published (retain flag and QoS kept) and judges it at the end.

    A message fails when its topic is not in the contract, when its retain flag, QoS or
    Message Expiry Interval differ from the contract, when its payload fits none of its
    channel's message schemas, when an encrypted token does not decrypt with the test's keys
    to a valid token object, or when any plain payload holds an access token. Requests are
    other clients' messages and are not judged.
    """

    def __init__(self, host: str, port: int, base: str, *, key_file: Path, mqtt5: bool) -> None:
        self.base = base
        self.mqtt5 = mqtt5
        self.keys = KeyRing(key_file)
        self._request_prefix = Topics(base).request("")
        self._token_topics = {Topics(base).token, Topics(base).token_app}
        self._allowed: set[str] = set()
        self._watcher = Watcher(
            host, port, f"{base}/#", qos=2, retain_as_published=True, on_seen=self._seen
        )

    def _seen(self, message: Seen) -> None:
        if message.topic in self._token_topics:
            self.keys.refresh()  # the key file as it is now: a rotation must not go unseen

    def remember_keys(self) -> None:
        """Read the key file now: call it before a test replaces the file, so the tokens
        already published with the old key can still be checked at the end."""
        self.keys.refresh()

    def allow(self, topic: str) -> None:
        """Let a test's deliberate off-contract topic pass (say why where you call it)."""
        self._allowed.add(topic)

    @property
    def messages(self) -> list[Seen]:
        """What has been recorded so far."""
        return list(self._watcher.messages)

    def problems(self) -> list[str]:
        """Everything wrong with what the agent published ([] when nothing is)."""
        contract = Contract.load()
        self.keys.refresh()
        found: list[str] = []
        tokens: set[str] = set()
        plain: list[Seen] = []
        for message in self.messages:
            if message.topic.startswith(self._request_prefix) or message.topic in self._allowed:
                continue
            found += contract.problems(
                self.base,
                message.topic,
                message.payload,
                retain=message.retain,
                qos=message.qos,
                expiry=message.expiry,
                decrypt=self.keys.decrypt,
                at=message.wall,
                mqtt5=self.mqtt5,
            )
            if message.topic in self._token_topics:
                if message.payload:
                    tokens.add(self._access_token(message))
            else:
                plain.append(message)
        for message in plain:
            for token in tokens:
                if token and token.encode() in message.payload:
                    found.append(f"{message.topic}: a plain payload holds an access token")
        return sorted(set(found), key=found.index)

    def _access_token(self, message: Seen) -> str:
        try:
            return str(json.loads(self.keys.decrypt(message.payload))["access_token"])
        except Exception:
            return ""  # reported by the contract check

    def __enter__(self) -> ContractChecker:
        self._watcher.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._watcher.__exit__(t, v, tb)
