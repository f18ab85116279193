"""MqttLink across a broker that dies with messages in flight: what paho would resend, and what not.

The agent republishes its retained state on every connect. A retained or expiring message the
dead broker never acknowledged is stale by then: resent, it would land over the fresh state,
and a token message would outlive its token by the time the broker was away. A plain request
(or, under MQTT 3.1.1, a reply: it has no expiry) is still resent, as QoS 1 promises.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mqtt_tokend.adapters.mqtt import MqttLink
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.config import MqttConfig
from mqtt_tokend.dev.devbroker import PrivateMosquitto
from tests.integration.watch import wait_until

pytestmark = pytest.mark.integration

RETAINED, EXPIRING, PLAIN = "link/retained", "link/expiring", "link/plain"


def received(log: Path, start: int, topic: str) -> bool:
    """Mosquitto (log_type all) logged a PUBLISH on `topic` after byte `start` of its log."""
    with log.open("rb") as handle:
        handle.seek(start)
        return f"'{topic}'".encode() in handle.read()


@pytest.mark.parametrize("protocol", [3, 5], ids=["mqtt3.1.1", "mqtt5"])
def test_a_reconnect_resends_requests_but_never_stale_retained_or_expiring_messages(
    tmp_path: Path, protocol: int
) -> None:
    connects = threading.Semaphore(0)
    with PrivateMosquitto(tmp_path / "broker", extra_config="log_type all") as broker:
        config = MqttConfig(host=broker.host, port=broker.port, protocol=protocol)
        link = MqttLink(
            config,
            client_id="link-test",
            will=None,
            subscriptions=[],
            on_connected=connects.release,
            on_message=lambda _message: None,
        )
        link.start()
        try:
            wait_until(lambda: connects.acquire(blocking=False), timeout=5, what="the connect")
            broker.freeze()  # takes the messages into its socket, acknowledges none
            link.publish(RETAINED, b"old state", retain=True)
            link.publish(EXPIRING, b"old token", retain=False, expiry=60)
            assert link.send(PLAIN, b"a request")
            broker.kill()
            wait_until(lambda: not link.connected, timeout=5, what="the link to see the loss")
            restarted_at = broker.log_path.stat().st_size
            broker.start()
            wait_until(lambda: connects.acquire(blocking=False), timeout=10, what="the reconnect")
            # paho resends in the order it queued: once the request arrived, so had the rest.
            wait_until(
                lambda: received(broker.log_path, restarted_at, PLAIN),
                timeout=5,
                what="the request resent to the new broker",
            )
            assert not received(broker.log_path, restarted_at, RETAINED)
            # MQTT 3.1.1 has no Message Expiry Interval: there it is a plain message.
            assert received(broker.log_path, restarted_at, EXPIRING) == (protocol == 3)
            with oneshot(config, purpose="test") as session:
                assert session.retained([RETAINED], timeout=5) == {}
        finally:
            link.stop()
