"""Answers to `<base>/request/<verb>`: refresh, check, status, and auth from the dashboard."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mqtt_tokend.contract import notices
from mqtt_tokend.contract.health import State
from mqtt_tokend.contract.messages import Reply
from mqtt_tokend.contract.notices import Alert
from mqtt_tokend.contract.topics import REQUEST_VERBS
from mqtt_tokend.contract.wire import RequestError, parse_request
from mqtt_tokend.contract.wording import user_name
from mqtt_tokend.daemon.inbox import Request
from mqtt_tokend.errors import TokendError

if TYPE_CHECKING:
    from mqtt_tokend.daemon.agent import Agent

_LOG = logging.getLogger(__name__)


class RequestHandler:
    """Parses a request, acts through the agent, and answers on the response topic."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def handle(self, request: Request) -> None:
        """Act on one request; malformed ones get an error answer and change nothing."""
        message = request.message
        topics = self._agent.out.topics
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
            self._agent.out.respond(reply, ok=False, error=str(err))
            return
        transaction = body.get("transaction")
        if verb not in REQUEST_VERBS:
            known = ", ".join(sorted(REQUEST_VERBS))
            error = f"unknown verb {verb!r}; use one of {known}"
            self._agent.out.respond(reply, ok=False, error=error, transaction=transaction)
        elif verb == "refresh":
            self._refresh(request, body, reply)
        else:
            if verb == "check":
                self._agent.check()
            health = self._agent.health().to_payload()
            self._agent.out.respond(reply, ok=True, data=health, transaction=transaction)

    def _refresh(self, request: Request, body: dict[str, Any], reply: Reply) -> None:
        agent = self._agent
        transaction = body.get("transaction")
        tokens = agent.tokens
        if tokens is None or agent.facts().login_rejected:
            health = agent.health().to_payload()
            agent.out.respond(
                reply, ok=False, error=health["message"], data=health, transaction=transaction
            )
            return
        if agent.gate.should_call(request, body, tokens, now=agent.clock.monotonic()):
            agent.refresh(str(body.get("reason") or "requested"))
        refreshed = agent.tokens is not tokens
        ok = agent.state in (State.OK, State.RETRYING)
        data = {"refreshed": refreshed} | agent.health().to_payload()
        error = None if ok else str(data["message"])
        agent.out.respond(reply, ok=ok, data=data, error=error, transaction=transaction)

    def _auth(self, payload: bytes, reply: Reply) -> None:
        agent = self._agent
        try:
            profile = agent.login.finish(payload)
        except TokendError as err:
            _LOG.warning("re-authorization over MQTT failed: %s", err)
            agent.out.respond(reply, ok=False, error=str(err))
            agent.note(f"the pasted login was not accepted: {err}")
            agent.out.alert(
                Alert(
                    notices.AUTH_FAILED,
                    f"the pasted login was not accepted: {err}",  # Home Assistant shows this
                    agent.clock.wall(),
                    "Open the newest authorization link, approve, and paste the final address.",
                )
            )
            return
        who = user_name(profile) or "unknown user"
        _LOG.info("logged in over MQTT as %s", who)
        agent.out.respond(reply, ok=True, data={"user": who})
