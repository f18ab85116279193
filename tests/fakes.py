"""Fakes for unit tests of the core: a clock, Spotify, a publisher. Never used in integration."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from mqtt_tokend.adapters.crypto import TokenCipher
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.config import Config
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.tokens import TokenGrant
from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import Connected
from mqtt_tokend.daemon.wiring import build_agent
from mqtt_tokend.errors import TokendError

START = 1_800_000_000.0


class FakeClock:
    """Wall and monotonic time that advance together unless the wall clock is made to jump."""

    def __init__(self, wall: float = START) -> None:
        self._wall = wall
        self._mono = 1000.0

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def jump_wall(self, seconds: float) -> None:
        self._wall += seconds


@dataclass
class FakeSpotify:
    """Answers refreshes with numbered tokens, or raises what the test queued."""

    lifetime: float = 3600.0
    rotate: bool = True
    failures: list[TokendError] = field(default_factory=list)
    me_failures: list[TokendError] = field(default_factory=list)
    refresh_calls: list[str] = field(default_factory=list)
    me_calls: int = 0
    confidential: bool = False
    client_id: str = "client"
    app_calls: int = 0
    app_failures: list[TokendError] = field(default_factory=list)
    devices_calls: int = 0
    player: dict[str, Any] = field(default_factory=lambda: {"activeUser": "demo"})
    codes: list[str] = field(default_factory=list)

    def refresh(self, refresh_token: str) -> TokenGrant:
        self.refresh_calls.append(refresh_token)
        if self.failures:
            raise self.failures.pop(0)
        n = len(self.refresh_calls)
        return TokenGrant(
            access_token=f"access-{n}",
            expires_in=self.lifetime,
            scope="user-read-playback-state",
            refresh_token=f"refresh-{n}" if self.rotate else None,
        )

    def me(self, access_token: str) -> dict[str, Any]:
        self.me_calls += 1
        if self.me_failures:
            raise self.me_failures.pop(0)
        return {"id": "demo", "display_name": "Demo User"}

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> TokenGrant:
        self.codes.append(code)
        return TokenGrant(
            access_token="login-access",
            expires_in=self.lifetime,
            scope="user-read-playback-state",
            refresh_token="login-refresh",
        )

    def devices(self, access_token: str) -> list[dict[str, Any]]:
        self.devices_calls += 1
        return [{"id": "d1", "name": "LoFi Pi", "is_active": True}]

    def client_credentials(self) -> TokenGrant:
        self.app_calls += 1
        if self.app_failures:
            raise self.app_failures.pop(0)
        return TokenGrant(access_token=f"app-{self.app_calls}", expires_in=self.lifetime, scope="")

    def zeroconf_info(self, url: str) -> dict[str, Any]:
        return self.player

    def authorize_url(self, **params: Any) -> str:
        return "http://accounts.test/authorize?state=" + str(params["state"])

    def close(self) -> None:
        pass


@dataclass
class Published:
    topic: str
    payload: bytes
    retain: bool
    expiry: int | None
    reply: Reply | None

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class FakePublisher:
    """Records every publish."""

    connected: bool = True
    messages: list[Published] = field(default_factory=list)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        retain: bool,
        expiry: int | None = None,
        reply: Reply | None = None,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.messages.append(Published(topic, data, retain, expiry, reply))

    def on(self, topic: str) -> list[Published]:
        return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Published:
        found = self.on(topic)
        assert found, f"nothing published on {topic}"
        return found[-1]


def running_agent(
    *,
    config: Config,
    store: TokenStore,
    spotify: FakeSpotify,
    cipher: TokenCipher,
    publisher: FakePublisher,
    clock: FakeClock,
) -> Agent:
    """An agent started and connected as the service runs it, on the fakes (seeded jitter)."""
    agent = build_agent(
        config=config,
        store=store,
        spotify=spotify,
        cipher=cipher,
        publisher=publisher,
        clock=clock,
        rng=random.Random(7),
    )
    agent.start()
    agent.step(Connected())
    return agent
