"""Measures, by real publish and subscribe on a running Mosquitto, what each principal may do:
for every topic, whether its QoS 1 publish is accepted (the MQTT 5 PUBACK reason code), and
whose messages it receives there. One connection per principal, every wait a deadline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from tests.deploy.conftest import Peer

Principal = tuple[str | None, str | None]  # (user name or None for anonymous, password)


@dataclass
class Outcomes:
    """What a probe run observed."""

    connected: dict[str, bool] = field(default_factory=dict)
    published: dict[tuple[str, str], bool] = field(default_factory=dict)
    received: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    probes: int = 0

    def may_write(self, who: str, topic: str) -> bool:
        return self.published.get((who, topic), False)

    def reads_from(self, who: str, topic: str, senders: set[str]) -> bool | None:
        """Whether `who` received a message one of `senders` published on `topic` (None: none
        of them could publish there, so reading is not observable)."""
        writers = {s for s in senders if self.may_write(s, topic)}
        if not writers:
            return None
        return bool(self.received.get((who, topic), set()) & writers)


def probe(port: int, principals: dict[str, Principal], topics: list[str]) -> Outcomes:
    """Every principal subscribes to every topic (QoS 0, so deliveries stay in order with the
    SUBACK that closes the run), then publishes once to each; returns what happened."""
    seen = Outcomes()
    peers: dict[str, Peer] = {}
    try:
        for name, (user, password) in principals.items():
            peer = Peer(port, user, password, client_id=f"probe-{uuid.uuid4().hex}")
            code = peer.connect()
            seen.connected[name] = not code.is_failure  # type: ignore[attr-defined]
            if seen.connected[name]:
                peer.subscribe(*topics, qos=0)
                peers[name] = peer
            else:
                peer.close()
        for name, peer in peers.items():
            for topic in topics:
                code = peer.publish(topic, f"{name}|{topic}")
                seen.published[(name, topic)] = not code.is_failure  # type: ignore[attr-defined]
        for name, peer in peers.items():
            # A barrier: the broker queued every delivery to this client before this SUBACK.
            peer.subscribe(f"probe-barrier/{uuid.uuid4().hex}", qos=0)
            for topic, payload, _retained in list(peer.messages):
                sender = payload.decode().split("|", 1)[0]
                seen.received.setdefault((name, topic), set()).add(sender)
    finally:
        for peer in peers.values():
            peer.close()
    seen.probes = len(principals) * len(topics) * 2
    return seen
