"""Answers to `<base>/request/<verb>`: refresh, check, status, and auth from the dashboard.

Every request is hostile until proven otherwise. An answer goes only under
`<base>/response/`: a request whose MQTT 5 Response Topic points anywhere else is refused,
with the error on `<base>/response/<verb>`, and the refusals are logged at most once a
minute. `check` costs Spotify at most one check per CHECK_MIN_INTERVAL seconds, whatever
the burst. A refused paste gets wording.REFUSED, the same bytes whatever was wrong; refusals are
logged, and told to the alert topic, at most once per FAILED_LOGIN_REPORT_INTERVAL seconds,
and never rewrite the health record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.topics import REQUEST_VERBS
from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome, RequestError, parse_request
from mqtt_tokend.contract.wording import REFUSED, user_name
from mqtt_tokend.core.gate import SingleFlight, Throttle
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.refusal import not_refreshed
from mqtt_tokend.errors import TokendError

_LOG = logging.getLogger(__name__)

CHECK_MIN_INTERVAL = 30.0  # seconds between two Spotify checks asked for over MQTT
FAILED_LOGIN_REPORT_INTERVAL = 60.0  # seconds between two `auth_failed` reports
REFUSAL_LOG_INTERVAL = 60.0  # seconds between two log lines about refused Response Topics
MAX_RESPONSE_TOPIC = 256  # characters


class Session(Protocol):
    """What answering needs from the agent."""

    def health_payload(self) -> dict[str, Any]:
        """The health record as of now."""
        ...

    def check(self) -> None:
        """Verify the session with Spotify now (and publish the result)."""
        ...

    def refresh_on_request(self, request: Request, body: dict[str, Any]) -> RefreshOutcome:
        """Refresh if the gate allows: a new token, or why not and when the next may be made."""
        ...

    def finish_login(self, payload: bytes) -> dict[str, Any]:
        """Complete the offered login from a pasted redirect URL; the user's profile."""
        ...

    def login_refused(self) -> None:
        """Tell the people that a pasted login was refused (the health record is untouched)."""
        ...


class RequestHandler:
    """Parses a request, acts through the session, and answers on the response topic."""

    def __init__(
        self, session: Session, out: Broadcaster, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._session = session
        self._out = out
        self._now = now
        self._checks = SingleFlight(CHECK_MIN_INTERVAL)
        self._failure_reports = Throttle(FAILED_LOGIN_REPORT_INTERVAL)
        self._refusal_logs = Throttle(REFUSAL_LOG_INTERVAL)
        self._refused = 0  # requests refused for their Response Topic since the last log line
        self._pastes_refused = 0  # pasted logins refused since the last log line

    def handle(self, request: Request) -> None:
        """Act on one request; malformed ones get an error answer and change nothing."""
        message = request.message
        topics = self._out.topics
        verb = topics.verb_of(message.topic)
        if message.retain or verb is None:
            return  # a retained command is stale by definition
        asked = message.response_topic or None  # an empty Response Topic is none
        refused = asked is not None and not self._replies_to(asked, verb)
        reply = Reply(
            topic=asked if asked is not None and not refused else topics.response(verb),
            correlation_data=message.correlation_data,
        )
        if verb == "auth" and not refused:  # the payload is the pasted redirect URL, not JSON
            self._auth(message.payload, reply)
            return
        try:
            body = {} if verb == "auth" else parse_request(message.payload)
        except RequestError as err:
            self._out.respond(reply, ok=False, error=str(err))
            return
        transaction = body.get("transaction")
        if refused:
            self._refuse(reply, transaction)
        elif verb not in REQUEST_VERBS:
            known = ", ".join(sorted(REQUEST_VERBS))
            error = f"unknown verb {verb!r}; use one of {known}"
            self._out.respond(reply, ok=False, error=error, transaction=transaction)
        elif verb == "refresh":
            self._refresh(request, body, reply)
        else:
            if verb == "check" and self._checks.should_call(
                received=request.received, now=self._now()
            ):
                self._session.check()
                self._checks.done(ended=self._now())
            health = self._session.health_payload()
            self._out.respond(reply, ok=True, data=health, transaction=transaction)

    def _replies_to(self, topic: str, verb: str) -> bool:
        """A Response Topic the agent may publish to: one topic under `<base>/response/`; for a
        pasted login, under `<base>/response/auth` only, which the ACL lets no player read."""
        prefix = self._out.topics.response("")
        own = self._out.topics.response("auth")
        if verb == "auth" and topic != own and not topic.startswith(own + "/"):
            return False
        return (
            topic.startswith(prefix)
            and len(prefix) < len(topic) <= MAX_RESPONSE_TOPIC
            and not any(c in topic for c in "+#\0")
        )

    def _refuse(self, reply: Reply, transaction: Any) -> None:
        prefix = self._out.topics.response("")
        self._refused += 1
        if self._refusal_logs.allow(self._now()):
            _LOG.warning(
                "refused %d request(s) whose MQTT 5 Response Topic is not under %s",
                self._refused,
                prefix,
            )
            self._refused = 0
        error = f"refused: the Response Topic must be under {prefix}"
        self._out.respond(reply, ok=False, error=error, transaction=transaction)

    def _refresh(self, request: Request, body: dict[str, Any], reply: Reply) -> None:
        transaction = body.get("transaction")
        outcome = self._session.refresh_on_request(request, body)
        health = self._session.health_payload()
        data = outcome.data(health)
        if outcome.reason == NotRefreshed.NO_LOGIN:
            self._out.respond(
                reply, ok=False, error=health["message"], data=data, transaction=transaction
            )
            return
        held = None if outcome.refreshed else not_refreshed(health)
        ok = health["state"] in (State.OK, State.RETRYING) and held is None
        error = None if ok else held or str(data["message"])
        self._out.respond(reply, ok=ok, data=data, error=error, transaction=transaction)

    def _auth(self, payload: bytes, reply: Reply) -> None:
        try:
            profile = self._session.finish_login(payload)
        except TokendError:
            self._out.respond(reply, ok=False, error=REFUSED)  # the same bytes for every refusal
            self._pastes_refused += 1
            if self._failure_reports.allow(self._now()):  # a flood is one report a minute
                _LOG.warning("refused %d pasted login(s) on request/auth", self._pastes_refused)
                self._pastes_refused = 0
                self._session.login_refused()
            return
        who = user_name(profile) or "unknown user"
        _LOG.info("logged in over MQTT as %s", who)
        self._out.respond(reply, ok=True, data={"user": who})
