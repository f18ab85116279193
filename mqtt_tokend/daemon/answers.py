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
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.topics import REQUEST_VERBS
from mqtt_tokend.contract.wire import NotRefreshed, RefreshOutcome, RequestError, parse_request
from mqtt_tokend.contract.wording import REFUSED, user_name
from mqtt_tokend.core.gate import SingleFlight, Throttle
from mqtt_tokend.daemon.broadcast import Broadcaster
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.daemon.refusal import not_refreshed

_LOG = logging.getLogger(__name__)

CHECK_MIN_INTERVAL = 30.0  # seconds between two Spotify checks asked for over MQTT
FAILED_LOGIN_REPORT_INTERVAL = 60.0  # seconds between two `auth_failed` reports
REFUSAL_LOG_INTERVAL = 60.0  # seconds between two log lines about refused Response Topics
MAX_RESPONSE_TOPIC = 256  # characters


class Work(StrEnum):
    """What the loop does for a request before it is answered."""

    NOTHING = "nothing"  # answer with the health record as it stands
    CHECK = "check"  # verify the session with Spotify, then answer with the health record
    REFRESH = "refresh"  # refresh if the gate allows, then answer with the outcome
    LOGIN = "login"  # finish the offered login with the pasted redirect URL


@dataclass(frozen=True)
class Decision:
    """A request the handler accepted: the work the loop carries out, and where to answer."""

    work: Work
    request: Request
    reply: Reply
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def pasted(self) -> bytes:
        """The pasted redirect URL of a login (the payload is not JSON)."""
        return self.request.message.payload


@dataclass(frozen=True)
class Done:
    """What came of a decision's work, for the answer."""

    health: dict[str, Any] = field(default_factory=dict)  # the health record after the work
    now: float = 0.0  # wall time on the agent's clock, when the health record was taken
    refreshed: RefreshOutcome | None = None  # Work.REFRESH
    profile: dict[str, Any] | None = None  # Work.LOGIN: the user's profile; None when refused


class RequestHandler:
    """Parses a request and decides what it asks for; answers it once the loop has done that.

    Requests that ask for nothing (malformed, refused, unknown) are answered at once.
    """

    def __init__(self, out: Broadcaster, *, now: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._now = now
        self._checks = SingleFlight(CHECK_MIN_INTERVAL)
        self._failure_reports = Throttle(FAILED_LOGIN_REPORT_INTERVAL)
        self._refusal_logs = Throttle(REFUSAL_LOG_INTERVAL)
        self._refused = 0  # requests refused for their Response Topic since the last log line
        self._pastes_refused = 0  # pasted logins refused since the last log line

    def decide(self, request: Request) -> Decision | None:
        """What one request asks the loop to do; None when it was answered (or ignored)."""
        message = request.message
        topics = self._out.topics
        verb = topics.verb_of(message.topic)
        if message.retain or verb is None:
            return None  # a retained command is stale by definition
        asked = message.response_topic or None  # an empty Response Topic is none
        refused = asked is not None and not self._replies_to(asked, verb)
        reply = Reply(
            topic=asked if asked is not None and not refused else topics.response(verb),
            correlation_data=message.correlation_data,
        )
        if verb == "auth" and not refused:  # the payload is the pasted redirect URL, not JSON
            return Decision(Work.LOGIN, request, reply)
        try:
            body = {} if verb == "auth" else parse_request(message.payload)
        except RequestError as err:
            self._out.respond(reply, ok=False, error=str(err))
            return None
        transaction = body.get("transaction")
        if refused:
            self._refuse(reply, transaction)
            return None
        if verb not in REQUEST_VERBS:
            known = ", ".join(sorted(REQUEST_VERBS))
            error = f"unknown verb {verb!r}; use one of {known}"
            self._out.respond(reply, ok=False, error=error, transaction=transaction)
            return None
        if verb == "refresh":
            return Decision(Work.REFRESH, request, reply, body)
        if verb == "check" and self._checks.should_call(received=request.received, now=self._now()):
            return Decision(Work.CHECK, request, reply, body)
        return Decision(Work.NOTHING, request, reply, body)

    def answer(self, decision: Decision, done: Done) -> bool:
        """Answer a decided request; True when people should be told of a refused login."""
        transaction = decision.body.get("transaction")
        if decision.work == Work.LOGIN:
            return self._answer_login(decision.reply, done.profile)
        if decision.work == Work.REFRESH and done.refreshed is not None:
            self._answer_refresh(decision.reply, transaction, done.refreshed, done.health, done.now)
            return False
        if decision.work == Work.CHECK:
            self._checks.done(ended=self._now())
        self._out.respond(decision.reply, ok=True, data=done.health, transaction=transaction)
        return False

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

    def _answer_refresh(
        self,
        reply: Reply,
        transaction: Any,
        outcome: RefreshOutcome,
        health: dict[str, Any],
        now: float,
    ) -> None:
        data = outcome.data(health)
        if outcome.reason == NotRefreshed.NO_LOGIN:
            self._out.respond(
                reply, ok=False, error=health["message"], data=data, transaction=transaction
            )
            return
        held = None if outcome.refreshed else not_refreshed(health, now=now)
        ok = health["state"] in (State.OK, State.RETRYING) and held is None
        error = None if ok else held or str(data["message"])
        self._out.respond(reply, ok=ok, data=data, error=error, transaction=transaction)

    def _answer_login(self, reply: Reply, profile: dict[str, Any] | None) -> bool:
        if profile is None:
            self._out.respond(reply, ok=False, error=REFUSED)  # the same bytes for every refusal
            self._pastes_refused += 1
            if not self._failure_reports.allow(self._now()):  # a flood is one report a minute
                return False
            _LOG.warning("refused %d pasted login(s) on request/auth", self._pastes_refused)
            self._pastes_refused = 0
            return True
        who = user_name(profile) or "unknown user"
        _LOG.info("logged in over MQTT as %s", who)
        self._out.respond(reply, ok=True, data={"user": who})
        return False
