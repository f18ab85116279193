"""Answers to `<base>/request/<verb>`: refresh, check, status, and auth from the dashboard."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.topics import REQUEST_VERBS
from mqtt_tokend.contract.wire import RequestError, parse_request
from mqtt_tokend.contract.wording import user_name
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.refusal import not_refreshed
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)


class Session(Protocol):
    """What answering needs from the agent."""

    def health_payload(self) -> dict[str, Any]:
        """The health record as of now."""
        ...

    def check(self) -> None:
        """Verify the session with Spotify now (and publish the result)."""
        ...

    def refresh_on_request(self, request: Request, body: dict[str, Any]) -> bool | None:
        """Refresh if the gate allows; True when the token changed, None without a login."""
        ...

    def finish_login(self, payload: bytes) -> dict[str, Any]:
        """Complete the offered login from a pasted redirect URL; the user's profile."""
        ...

    def login_failed(self, message: str) -> None:
        """Tell the health record and the people that a pasted login was refused."""
        ...


class RequestHandler:
    """Parses a request, acts through the session, and answers on the response topic."""

    def __init__(self, session: Session, out: Broadcaster) -> None:
        self._session = session
        self._out = out

    def handle(self, request: Request) -> None:
        """Act on one request; malformed ones get an error answer and change nothing."""
        message = request.message
        topics = self._out.topics
        verb = topics.verb_of(message.topic)
        if message.retain or verb is None:
            return  # a retained command is stale by definition
        reply = Reply(
            topic=message.response_topic or topics.response(verb),
            correlation_data=message.correlation_data,
        )
        if verb == "auth":  # the payload is the pasted redirect URL, not JSON
            self._auth(message.payload, reply)
            return
        try:
            body = parse_request(message.payload)
        except RequestError as err:
            self._out.respond(reply, ok=False, error=str(err))
            return
        transaction = body.get("transaction")
        if verb not in REQUEST_VERBS:
            known = ", ".join(sorted(REQUEST_VERBS))
            error = f"unknown verb {verb!r}; use one of {known}"
            self._out.respond(reply, ok=False, error=error, transaction=transaction)
        elif verb == "refresh":
            self._refresh(request, body, reply)
        else:
            if verb == "check":
                self._session.check()
            health = self._session.health_payload()
            self._out.respond(reply, ok=True, data=health, transaction=transaction)

    def _refresh(self, request: Request, body: dict[str, Any], reply: Reply) -> None:
        transaction = body.get("transaction")
        refreshed = self._session.refresh_on_request(request, body)
        health = self._session.health_payload()
        if refreshed is None:
            self._out.respond(
                reply, ok=False, error=health["message"], data=health, transaction=transaction
            )
            return
        held = None if refreshed else not_refreshed(health)
        ok = health["state"] in (State.OK, State.RETRYING) and held is None
        data = {"refreshed": refreshed} | health
        error = None if ok else held or str(data["message"])
        self._out.respond(reply, ok=ok, data=data, error=error, transaction=transaction)

    def _auth(self, payload: bytes, reply: Reply) -> None:
        try:
            profile = self._session.finish_login(payload)
        except TokendError as err:
            _LOG.warning("re-authorization over MQTT failed: %s", err)
            self._out.respond(reply, ok=False, error=str(err))
            self._session.login_failed(f"the pasted login was not accepted: {err}")
            return
        who = user_name(profile) or "unknown user"
        _LOG.info("logged in over MQTT as %s", who)
        self._out.respond(reply, ok=True, data={"user": who})
