"""The broker watch on an injected clock: it speaks past the grace, once, and again when reached."""

from __future__ import annotations

from mqtt_tokend.daemon.broker_watch import BrokerWatch
from tests.fakes import FakeClock


class Link:
    def __init__(self) -> None:
        self.up = False


def watch_on(link: Link, clock: FakeClock) -> BrokerWatch:
    return BrokerWatch(
        connected=lambda: link.up,
        last_error=lambda: "refused",
        where="localhost:1883",
        config_path="/etc/mqtt-tokend/config.toml",
        monotonic=clock.monotonic,
        grace=10.0,
    )


def test_the_broker_watch_speaks_past_the_grace_and_again_when_reached(clock: FakeClock) -> None:
    link = Link()
    watch = watch_on(link, clock)
    assert not watch.recheck() and watch.seconds_until_due() == 10.0
    clock.advance(9.9)
    assert not watch.recheck() and watch.problem is None
    clock.advance(0.1)
    assert watch.recheck()
    assert watch.problem is not None and "localhost:1883 (refused)" in watch.problem
    assert "/etc/mqtt-tokend/config.toml" in watch.instructions
    assert not watch.recheck() and watch.seconds_until_due() is None  # said once
    link.up = True
    assert watch.recheck() and watch.problem is None
    assert not watch.recheck()


def test_a_short_disconnect_is_not_worth_a_word(clock: FakeClock) -> None:
    link = Link()
    link.up = True
    watch = watch_on(link, clock)
    watch.recheck()
    link.up = False
    clock.advance(5)
    assert not watch.recheck()
    link.up = True
    clock.advance(20)
    assert not watch.recheck() and watch.problem is None
