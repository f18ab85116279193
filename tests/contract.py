"""The MQTT contract in `topics/` as the tests read it: channels, bindings, payload schemas.

`Contract.load()` reads `topics/asyncapi.yaml`; `Contract.problems(...)` says what is wrong
with one published message (unknown topic, wrong retain flag or QoS, a payload its schemas
refuse, a token whose plaintext is not a token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.integration.watch import patient

TOPICS_DIR = Path(__file__).resolve().parents[1] / "topics"
DOCUMENT = TOPICS_DIR / "asyncapi.yaml"
SCHEMAS = TOPICS_DIR / "schemas"
TEXT = "text/plain"
ARRIVAL_SLACK = patient(2.0)  # seconds a received expiry may exceed the token's time left


@dataclass(frozen=True)
class MessageSpec:
    """One message a channel may carry."""

    name: str
    content_type: str
    payload: Draft7Validator
    plaintext: Draft7Validator | None  # for encrypted payloads: the schema of what is inside


@dataclass(frozen=True)
class Channel:
    """One channel of the document, with what its operations say about it."""

    id: str
    address: str
    sender: str  # "agent" (send operations) or "anyone" (receive operations)
    qos: int
    retain: bool
    expiry: bool  # a Message Expiry Interval is set (MQTT 5)
    messages: tuple[MessageSpec, ...]
    summary: str

    def topic(self, base: str) -> str:
        """The address with the base topic filled in."""
        return self.address.replace("{base}", base)


def decode(payload: bytes, content_type: str) -> Any:
    """A payload as its schema sees it: "" when empty, text for text/plain, else JSON."""
    if not payload:
        return ""
    text = payload.decode("utf-8")
    return text if content_type == TEXT else json.loads(text)


def _registry() -> Registry[Any]:
    resources = [
        (path.resolve().as_uri(), Resource.from_contents(json.loads(path.read_text()), DRAFT7))
        for path in sorted(SCHEMAS.glob("*.json"))
    ]
    return Registry().with_resources(resources)


class Contract:
    """The AsyncAPI document, resolved into channels with validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        registry = _registry()
        base_uri = DOCUMENT.resolve().as_uri()

        def validator(schema: Mapping[str, Any]) -> Draft7Validator:
            return Draft7Validator(
                {"$id": base_uri, "allOf": [schema]},  # draft 7 ignores siblings of $ref
                registry=registry,
                format_checker=Draft7Validator.FORMAT_CHECKER,
            )

        senders: dict[str, tuple[str, dict[str, Any]]] = {}
        for operation in document["operations"].values():
            channel_id = _ref_id(operation["channel"]["$ref"])
            bindings = operation.get("bindings", {}).get("mqtt", {})
            who = "agent" if operation["action"] == "send" else "anyone"
            if channel_id in senders and senders[channel_id][0] != who:
                raise ValueError(f"channel {channel_id} is both sent and received")
            senders[channel_id] = (who, bindings)
        channels = {}
        for channel_id, raw in document["channels"].items():
            if channel_id not in senders:
                raise ValueError(f"channel {channel_id} has no operation")
            who, bindings = senders[channel_id]
            specs = []
            for name, ref in raw["messages"].items():
                message = self.resolve(ref)
                plain = message.get("x-plaintext")
                specs.append(
                    MessageSpec(
                        name=name,
                        content_type=message.get("contentType", document["defaultContentType"]),
                        payload=validator(message["payload"]),
                        plaintext=validator(plain) if plain is not None else None,
                    )
                )
            channels[channel_id] = Channel(
                id=channel_id,
                address=raw["address"],
                sender=who,
                qos=int(bindings["qos"]),
                retain=bool(bindings["retain"]),
                expiry="messageExpiryInterval" in bindings,
                messages=tuple(specs),
                summary=" ".join(raw["summary"].split()),
            )
        self.channels: dict[str, Channel] = channels

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> Contract:
        """Read the document (cached: it does not change during a test run)."""
        return _load(path)

    def pointer(self, ref: str) -> Any:
        """The node a local `#/...` reference points at."""
        if not ref.startswith("#/"):
            raise ValueError(f"not a local reference: {ref}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, node: Any) -> Any:
        """Follow a local reference, if `node` is one."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            if not node["$ref"].startswith("#/"):
                break
            node = self.pointer(node["$ref"])
        return node

    def channel_for(self, base: str, topic: str) -> Channel | None:
        """The channel whose address, with `base` filled in, is `topic`."""
        for channel in self.channels.values():
            if channel.topic(base) == topic:
                return channel
        if topic.startswith(f"{base}/response/"):  # an MQTT 5 Response Topic under response/
            verb = topic[len(f"{base}/response/") :].split("/", maxsplit=1)[0]
            replies = [c for c in self.channels.values() if "/response/" in c.address]
            named = [c for c in replies if c.topic(base) == f"{base}/response/{verb}"]
            return (named or replies or [None])[0]
        return None

    def problems(
        self,
        base: str,
        topic: str,
        payload: bytes,
        *,
        retain: bool | None = None,
        qos: int | None = None,
        expiry: int | None = None,
        decrypt: Callable[[bytes], bytes] | None = None,
        at: float | None = None,
        mqtt5: bool = False,
    ) -> list[str]:
        """What is wrong with one message the agent published ([] when nothing is).

        `retain` and `qos` are checked when given (a subscriber sees them only with
        retain-as-published and a QoS 2 subscription). `decrypt` opens encrypted payloads;
        `at` (wall time of arrival) bounds a token's Message Expiry Interval by its expiry;
        `mqtt5` says the agent speaks MQTT 5, so a token must carry one.
        """
        channel = self.channel_for(base, topic)
        if channel is None:
            return [f"{topic}: not a topic of the contract"]
        where = f"{topic} ({channel.id})"
        if channel.sender != "agent":
            return [f"{where}: the agent published on a channel it only receives"]
        found: list[str] = []
        if retain is not None and retain != channel.retain:
            found.append(f"{where}: retain={retain}, the contract says {channel.retain}")
        if qos is not None and qos != channel.qos:
            found.append(f"{where}: QoS {qos}, the contract says {channel.qos}")
        errors: list[str] = []
        for spec in channel.messages:
            try:
                value = decode(payload, spec.content_type)
            except (UnicodeDecodeError, ValueError) as err:
                errors.append(f"{spec.name}: not {spec.content_type} ({err})")
                continue
            refusals = [e.message for e in spec.payload.iter_errors(value)]
            if refusals:
                errors.append(f"{spec.name}: {'; '.join(refusals)}")
                continue
            found += self._inside(where, spec, payload, decrypt, expiry=expiry, at=at)
            if channel.expiry and expiry is not None and not payload:
                found.append(f"{where}: an empty payload with a Message Expiry Interval")
            if channel.expiry and expiry is None and payload and mqtt5:
                found.append(f"{where}: no Message Expiry Interval (MQTT 5)")
            break
        else:
            found.append(f"{where}: payload {payload[:80]!r} fits no message: {errors}")
        if expiry is not None and not channel.expiry:
            found.append(f"{where}: a Message Expiry Interval the contract does not declare")
        return found

    @staticmethod
    def _inside(
        where: str,
        spec: MessageSpec,
        payload: bytes,
        decrypt: Callable[[bytes], bytes] | None,
        *,
        expiry: int | None,
        at: float | None,
    ) -> list[str]:
        if spec.plaintext is None or decrypt is None:
            return []
        try:
            inside = json.loads(decrypt(payload))
        except Exception as err:
            return [f"{where}: does not decrypt to JSON with the test's keys ({err})"]
        refusals = [e.message for e in spec.plaintext.iter_errors(inside)]
        if refusals:
            return [f"{where}: plaintext: {'; '.join(refusals)}"]
        # `at` is when the test's subscriber read the message, later than the agent sent it
        # by however long a busy machine kept that reader waiting: allow for it.
        left = inside["expires_at"] - at if at is not None else None
        if expiry is not None and left is not None and expiry > left + ARRIVAL_SLACK:
            return [f"{where}: Message Expiry Interval {expiry} s outlives the token ({left:.0f})"]
        return []


def _ref_id(ref: str) -> str:
    match = re.fullmatch(r"#/channels/([^/]+)", ref)
    if match is None:
        raise ValueError(f"an operation's channel must be #/channels/<id>, got {ref}")
    return match.group(1)


@cache
def _load(path: Path) -> Contract:
    return Contract(yaml.safe_load(path.read_text(encoding="utf-8")))
