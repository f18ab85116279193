"""spotipy in one line: `spotipy.Spotify(auth_manager=TokendAuthManager(config))`.

spotipy asks its auth manager for a token before every request. This one hands out the
agent's token (never a refresh token: it has none) and, on that first call, adds a response
hook to the calling `Spotify` object's requests session: a 401 is reported to the agent as
`rejected`, and the request is sent once more with the new token, before spotipy sees it.
spotipy itself waits out 429s and retries 5xx (its own urllib3 retries). With
`requests_session=False` spotipy has no session to hook: a 401 then reaches the caller.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

from mqtt_tokend.config import Config
from mqtt_tokend.consumer import Token, TokenConsumer
from mqtt_tokend.errors import TokendError
from mqtt_tokend.webapi.transport import heal_on_401

_LOG = logging.getLogger(__name__)

REMEMBERED = 4  # tokens handed out that a 401 may still name
CALLER_DEPTH = 4  # frames up from get_access_token to spotipy's Spotify method


class TokendAuthManager:
    """A spotipy auth manager backed by the agent: `Spotify(auth_manager=TokendAuthManager())`.

    Takes a loaded `Config`, or the keywords `TokenConsumer` takes (host, port, base_topic,
    key_file...), or a running `consumer`. `timeout` bounds the wait for a token.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        consumer: TokenConsumer | None = None,
        timeout: float = 10.0,
        **consumer_kwargs: Any,
    ) -> None:
        self._consumer = consumer or TokenConsumer(config, **consumer_kwargs)
        self._timeout = timeout
        self._handed: OrderedDict[str, Token] = OrderedDict()
        self._lock = threading.Lock()  # spotipy objects are shared between threads
        self.heals = 0  # 401s answered with a new token

    # ---- what spotipy calls ------------------------------------------------------------------

    def get_access_token(self, as_dict: bool = False) -> str | dict[str, Any]:
        """A valid access token from the agent (spotipy calls this before every request)."""
        self._attach(sys._getframe(1))
        token = self._remember(self._consumer.token(timeout=self._timeout))
        return token_info(token) if as_dict else token.access_token

    def get_cached_token(self) -> dict[str, Any] | None:
        """The token held now, as spotipy's token_info, or None (never waits)."""
        token = self._consumer.current()
        return None if token is None else token_info(token)

    def validate_token(self, token_info: dict[str, Any] | None) -> dict[str, Any] | None:
        """spotipy's check: the agent only hands out valid tokens, so the newest one."""
        return self.get_cached_token() if token_info is not None else None

    @staticmethod
    def is_token_expired(token_info: dict[str, Any]) -> bool:
        """Whether a token_info has expired (spotipy's question)."""
        return float(token_info.get("expires_at", 0)) <= time.time()

    def stop(self) -> None:
        """Disconnect from the broker."""
        self._consumer.stop()

    # ---- healing a 401 -----------------------------------------------------------------------

    def fresh(self, old_authorization: str) -> str | None:
        """After a 401 to a token we handed out: report it, wait for the next; its header."""
        with self._lock:
            token = self._handed.get(old_authorization)
        if token is None:
            return None  # not ours (a token spotipy got elsewhere): leave the 401 to spotipy
        self._consumer.report_rejected(token)
        try:
            new = self._remember(self._consumer.token(timeout=self._timeout))
        except TokendError as err:
            _LOG.warning("no new token after a 401: %s", err)
            return None
        with self._lock:
            self.heals += 1
        return new.authorization

    def _remember(self, token: Token) -> Token:
        with self._lock:
            self._handed[token.authorization] = token
            self._handed.move_to_end(token.authorization)
            while len(self._handed) > REMEMBERED:
                self._handed.popitem(last=False)
        return token

    def _attach(self, frame: Any) -> None:
        """Find the spotipy `Spotify` whose `auth_manager` we are, up the call stack, and give
        its session the 401 hook (once)."""
        for _ in range(CALLER_DEPTH):
            if frame is None:
                return
            owner = frame.f_locals.get("self")
            if owner is not None and getattr(owner, "auth_manager", None) is self:
                session = getattr(owner, "_session", None)
                if heal_on_401(session, self.fresh):
                    _LOG.debug("a spotipy session now heals 401s through the agent")
                return
            frame = frame.f_back


def token_info(token: Token) -> dict[str, Any]:
    """A token as spotipy's token_info dict (no refresh token: the agent keeps that)."""
    return {
        "access_token": token.access_token,
        "token_type": "Bearer",
        "scope": token.scope,
        "expires_at": int(token.expires_at),
        "expires_in": max(0, int(token.expires_at - time.time())),
    }
