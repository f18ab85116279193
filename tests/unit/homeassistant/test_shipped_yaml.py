"""The shipped dashboard card, automations and script, and the one-tap login webhook: they use only
discovered entities and pass on only what they should."""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mqtt_tokend.adapters.login import code_from_redirect
from mqtt_tokend.contract import homeassistant as ha
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.errors import AuthRejected
from tests.unit.homeassistant.helpers import DEPLOY, ENTITY_ID, strings

# ---- the shipped dashboard card, automation and script -------------------------------------


def _yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("name", ["dashboard-card.yaml", "automation-alerts.yaml"])
def test_shipped_yaml_references_only_discovered_entities(name: str) -> None:
    referenced = {m for text in strings(_yaml(name)) for m in ENTITY_ID.findall(text)}
    assert referenced
    assert referenced <= set(ha.entity_ids(ha.DEFAULT_BASE_TOPIC).values())


def test_dashboard_card_shows_the_state_and_the_way_out() -> None:
    ids = ha.entity_ids(ha.DEFAULT_BASE_TOPIC)
    card = _yaml("dashboard-card.yaml")
    entities, problem, paste = card["cards"]
    assert [row["entity"] for row in entities["entities"]] == [
        ids[k]
        for k in (
            "token_state",
            "agent",
            "token_expiry",
            "last_refresh",
            "consecutive_failures",
            "reauth_by",
            "check_now",
            "force_refresh",
        )
    ]
    assert problem["conditions"] == [{"entity": ids["problem"], "state_not": "off"}]
    assert problem["card"]["type"] == "markdown"
    assert paste["conditions"] == [{"entity": ids["login"], "state": ha.LOGIN_NEEDED}]
    assert paste["card"]["entities"][0]["entity"] == ids["login_redirect"]


def _states(**states: tuple[str, dict[str, Any]]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    table = {entity.replace("__", "."): value for entity, value in states.items()}
    env.globals["states"] = lambda e: table.get(e, ("unknown", {}))[0]
    env.globals["state_attr"] = lambda e, a: table.get(e, ("unknown", {}))[1].get(a)
    return env


def test_markdown_card_links_the_login_and_says_where_to_paste() -> None:
    ids = ha.entity_ids(ha.DEFAULT_BASE_TOPIC)
    content = _yaml("dashboard-card.yaml")["cards"][1]["card"]["content"]
    url = "https://accounts.spotify.com/authorize?client_id=abc&state=xyz"
    attributes = {"instructions": "Run mqtt-tokend auth.", "message": "refused"}
    env = _states(
        **{
            ids["problem"].replace(".", "__"): ("on", {}),
            ids["agent"].replace(".", "__"): ("on", {}),
            ids["token_state"].replace(".", "__"): (ha.LOGIN_NEEDED, attributes),
            ids["login"].replace(".", "__"): (ha.LOGIN_NEEDED, {"auth_url": url}),
        }
    )
    text = env.from_string(content).render()
    assert f"[Open the Spotify login]({url})" in text
    assert "Run mqtt-tokend auth." in text
    assert "**Login required:**" in text
    assert "one-tap" in text
    assert "Login redirect URL" in text
    for dead_states in (
        {ids["problem"].replace(".", "__"): ("unavailable", {})},
        {
            ids["problem"].replace(".", "__"): ("on", {}),
            ids["agent"].replace(".", "__"): ("off", {}),
        },
    ):
        text = _states(**dead_states).from_string(content).render()
        assert "not answering" in text
        assert "systemctl status lofi-pi-token-manager" in text
        assert "Open the Spotify login" not in text


def test_alert_automation_notifies_with_message_and_instructions() -> None:
    (automation,) = _yaml("automation-alerts.yaml")
    # Home Assistant 2024.10's syntax: triggers/conditions/actions, `trigger:` and `action:`.
    assert not {"trigger", "condition", "action"} & set(automation)
    assert automation["triggers"] == [
        {"trigger": "state", "entity_id": ha.entity_ids(ha.DEFAULT_BASE_TOPIC)["alert"]}
    ]
    (action,) = automation["actions"]
    assert action["action"] == "notify.notify"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    attributes = {
        "event_type": "auth_required",
        "event": "auth_required",
        "message": "Spotify needs a new login.",
        "instructions": "Open the dashboard.",
    }
    trigger = {"to_state": {"state": "2027-01-01T00:00:00+00:00", "attributes": attributes}}
    title = env.from_string(action["data"]["title"]).render(trigger=trigger)
    message = env.from_string(action["data"]["message"]).render(trigger=trigger)
    assert title == "LoFi Pi Spotify: auth required"
    assert message == "Spotify needs a new login. What to do: Open the dashboard."
    trigger["to_state"]["attributes"] = attributes | {"instructions": None}
    message = env.from_string(action["data"]["message"]).render(trigger=trigger)
    assert message == "Spotify needs a new login."
    condition = env.from_string(automation["conditions"][0]["value_template"])
    assert condition.render(trigger=trigger | {"from_state": {"state": "x"}}) == "True"
    assert condition.render(trigger=trigger | {"from_state": {"state": "unavailable"}}) == "False"
    assert condition.render(trigger=trigger | {"from_state": None}) == "False"
    assert condition.render(trigger={"from_state": {"state": "x"}, "to_state": None}) == "False"


def test_login_script_publishes_to_the_auth_request_topic() -> None:
    script = _yaml("script-login.yaml")["lofi_pi_spotify_login"]
    (step,) = script["sequence"]
    assert step["action"] == "mqtt.publish"
    assert step["data"]["topic"] == Topics(ha.DEFAULT_BASE_TOPIC).request("auth")
    assert step["data"]["retain"] is False
    assert script["fields"]["redirect_url"]["required"] is True


# ---- the one-tap login: Spotify's redirect reaches Home Assistant's webhook -----------------


OFFER = "Offered-state_0123456789"  # the state of the login the agent offers
OFFERED_URL = f"https://accounts.spotify.com/authorize?client_id=abc&state={OFFER}&x=1"


class _Query(dict[str, str]):
    """aiohttp's query MultiDict as far as the automation uses it: get (the first), getall."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(reversed(pairs))  # `get` gives the first value, as a MultiDict does
        self.pairs = pairs

    def getall(self, key: str, default: list[str]) -> list[str]:
        return [value for name, value in self.pairs if name == key] or default


def _webhook_env(offered: str | None = OFFERED_URL) -> jinja2.Environment:
    """Home Assistant's Jinja as far as the webhook automation uses it (`is match`,
    `regex_findall`, `state_attr` of the Login sensor holding the login on offer)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    env.tests["match"] = lambda value, pattern: bool(re.match(pattern, str(value)))
    env.filters["regex_findall"] = lambda value, find: re.findall(find, str(value))
    login = (ha.entity_ids(ha.DEFAULT_BASE_TOPIC)["login"], "auth_url")
    env.globals["state_attr"] = lambda *entity_attribute: (
        offered if entity_attribute == login else None
    )
    return env


def _webhook_automation() -> dict[str, Any]:
    (automation,) = _yaml("automation-login-webhook.yaml")
    return dict(automation)


def test_webhook_automation_accepts_a_get_from_anywhere() -> None:
    automation = _webhook_automation()
    (trigger,) = automation["triggers"]
    assert trigger["trigger"] == "webhook"
    assert trigger["allowed_methods"] == ["GET"]
    assert trigger["local_only"] is False
    assert trigger["webhook_id"] == "REPLACE-WITH-A-LONG-RANDOM-ID"
    (action,) = automation["actions"]
    assert action["action"] == "mqtt.publish"
    assert action["data"]["topic"] == Topics(ha.DEFAULT_BASE_TOPIC).request("auth")
    assert action["data"]["retain"] is False


@pytest.mark.parametrize(
    ("query", "passed", "payload"),
    [
        ([("code", "AQB-x_y.z~1"), ("state", OFFER)], True, f"code=AQB-x_y.z~1&state={OFFER}"),
        # Spotify adds parameters of its own (e.g. `ubi`); only code and state go on.
        ([("code", "abc"), ("state", OFFER), ("ubi", "z")], True, f"code=abc&state={OFFER}"),
        (
            [("error", "access_denied"), ("state", OFFER)],
            True,
            f"error=access_denied&state={OFFER}",
        ),
        ([("code", "abc")], False, None),
        ([("state", OFFER)], False, None),
        ([("code", "a&state=evil"), ("state", OFFER)], False, None),
        ([("code", "abc"), ("state", "x y")], False, None),
        ([("code", "a" * 2000), ("state", OFFER)], False, None),
        # A stranger knows the webhook, not the login on offer: nothing of theirs goes on.
        ([("code", "abc"), ("state", "another-login-state-0123")], False, None),
        ([("code", "abc"), ("state", OFFER[:-1])], False, None),
        ([("code", "abc"), ("state", OFFER + "x")], False, None),
        ([("code", "abc"), ("state", OFFER), ("state", OFFER)], False, None),
        ([("code", "abc"), ("state", "x"), ("state", OFFER)], False, None),
        ([("error", "Call-555-0100"), ("state", "another-login-state-0123")], False, None),
    ],
)
def test_webhook_passes_on_only_the_offered_logins_code_and_state(
    query: list[tuple[str, str]], passed: bool, payload: str | None
) -> None:
    automation = _webhook_automation()
    env = _webhook_env()
    trigger = {"query": _Query(query)}
    (condition,) = automation["conditions"]
    assert env.from_string(condition["value_template"]).render(trigger=trigger).strip() == (
        str(passed)
    )
    if passed:
        (action,) = automation["actions"]
        rendered = env.from_string(action["data"]["payload"]).render(trigger=trigger).strip()
        assert rendered == payload
        # The agent's pasted-login parser reads it (no `?`: the whole text is the query).
        if "code=" in rendered:
            assert code_from_redirect(rendered, expected_state=OFFER) == dict(query)["code"]
        else:
            with pytest.raises(AuthRejected):
                code_from_redirect(rendered, expected_state=OFFER)


@pytest.mark.parametrize("offered", [None, "", "https://accounts.spotify.com/authorize?x=1"])
def test_webhook_passes_on_nothing_while_no_login_is_offered(offered: str | None) -> None:
    (condition,) = _webhook_automation()["conditions"]
    trigger = {"query": _Query([("code", "abc"), ("state", OFFER)])}
    rendered = (
        _webhook_env(offered).from_string(condition["value_template"]).render(trigger=trigger)
    )
    assert rendered.strip() == "False"
