"""The HTTP side of the Web API client: one persistent `requests` session, answers read once.

The only module of the consumer side that imports `requests`. Library errors become the
package's `TransientError`; a 401 hook lets a spotipy session heal a refused token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from mqtt_tokend.errors import TransientError

_LOG = logging.getLogger(__name__)

MAX_ERROR_TEXT = 300  # how much of an unreadable error body a message may quote


@dataclass(frozen=True)
class Reply:
    """One answer of the Web API: status, headers, the JSON body (None when empty or not JSON)."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: Any = field(repr=False)

    def error_message(self) -> str:
        """Spotify's `error.message`, or a reason phrase when the body has none."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:MAX_ERROR_TEXT]
        return f"HTTP {self.status}"


def new_session() -> requests.Session:
    """A session that keeps its connections open; it never retries by itself (we do)."""
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    return session


class Transport:
    """Sends Web API requests over one persistent session."""

    def __init__(
        self, *, api_url: str, timeout: float, session: requests.Session | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._session = session or new_session()

    def send(
        self,
        method: str,
        path: str,
        *,
        authorization: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Reply:
        """One request; TransientError when no answer came (refused, reset, timed out)."""
        data = None if body is None else json.dumps(body)
        headers = {"Authorization": authorization}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            answer = self._session.request(
                method,
                f"{self.api_url}{path}",
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            )
            content = answer.content
        except requests.RequestException as err:
            raise TransientError(f"no answer from {self.api_url}: {type(err).__name__}") from err
        try:
            document = json.loads(content) if content else None
        except (ValueError, RecursionError):
            document = None
        return Reply(answer.status_code, dict(answer.headers), document)

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()


Fresh = Callable[[str], "str | None"]


def heal_on_401(session: object, fresh: Fresh) -> bool:
    """Make `session` answer a 401 by asking `fresh(old Authorization)` for a new value and
    sending the request once more; False when it is not a requests session or has the hook."""
    if not isinstance(session, requests.Session):
        return False
    if any(getattr(hook, "tokend_heal", False) for hook in session.hooks["response"]):
        return False

    def heal(response: requests.Response, *_args: Any, **kwargs: Any) -> requests.Response:
        request = response.request
        old = request.headers.get("Authorization") if request is not None else None
        if response.status_code != 401 or request is None or old is None:
            return response
        new = fresh(old)
        if new is None or new == old or response.connection is None:
            return response
        _ = response.content  # read it, so the connection goes back to the pool
        response.close()
        again = request.copy()
        again.headers["Authorization"] = new
        healed: requests.Response = response.connection.send(again, **kwargs)
        healed.history.append(response)
        healed.request = again
        _LOG.info(
            "retried %s once with the agent's new token: %s",
            request.path_url.split("?")[0],
            healed.status_code,
        )
        return healed

    heal.tokend_heal = True  # type: ignore[attr-defined]
    session.hooks["response"].append(heal)
    return True
