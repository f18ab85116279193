"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt_tokend.adapters import systemd


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A datagram socket at a path, and the environment systemd would give the service."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, {"NOTIFY_SOCKET": str(path)}


def test_ready_sends_ready_and_a_one_line_status(
    listener: tuple[socket.socket, dict[str, str]],
) -> None:
    sock, env = listener
    assert systemd.ready("ok: token valid\nfor 59 min", environ=env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok: token valid for 59 min"


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda env: systemd.watchdog(environ=env), b"WATCHDOG=1"),
        (lambda env: systemd.status("retrying", environ=env), b"STATUS=retrying"),
        (lambda env: systemd.stopping(environ=env), b"STOPPING=1"),
    ],
    ids=["watchdog", "status", "stopping"],
)
def test_each_message(
    listener: tuple[socket.socket, dict[str, str]],
    send: Callable[[dict[str, str]], bool],
    expected: bytes,
) -> None:
    sock, env = listener
    assert send(env)
    assert sock.recv(4096) == expected


def test_abstract_socket_name() -> None:
    name = f"mqtt-tokend-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert systemd.watchdog(environ={"NOTIFY_SOCKET": f"@{name}"})
        assert sock.recv(4096) == b"WATCHDOG=1"


@pytest.mark.parametrize(
    "env",
    [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}],
    ids=["absent", "empty", "vsock"],
)
def test_outside_systemd_nothing_is_sent(env: dict[str, str]) -> None:
    assert not systemd.ready("ok", environ=env)


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert not systemd.watchdog(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "lots"}, None),
        ({}, None),
    ],
    ids=["set", "our-pid", "other-pid", "zero", "negative", "garbage", "absent"],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval(environ=env) == expected


def test_a_frozen_loop_stops_the_watchdog_pings(
    listener: tuple[socket.socket, dict[str, str]],
) -> None:
    """The loop pings each time it comes round, even idle; frozen in a step, it falls silent."""
    sock, env = listener
    inbox: systemd.HeartbeatQueue[str] = systemd.HeartbeatQueue(0.05, environ=env)
    frozen, turns = threading.Event(), []

    def loop() -> None:
        while True:
            try:
                item = inbox.get(timeout=3600)  # an idle agent waits long; the queue cuts it
            except queue.Empty:
                item = None
            turns.append(item)
            if item == "freeze":
                frozen.wait()  # a step that never returns: a refresh stuck on the network
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    for _ in range(3):  # idle turns each ping
        assert sock.recv(64) == b"WATCHDOG=1"
    inbox.put("freeze")
    deadline = time.monotonic() + 5
    while "freeze" not in turns:
        assert time.monotonic() < deadline, "the loop never took the item"
        time.sleep(0.01)
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):  # the pings sent before the loop froze
        while sock.recv(64) == b"WATCHDOG=1":
            pass
    sock.settimeout(0.5)  # ten intervals: a live loop would have pinged by now
    with pytest.raises(TimeoutError):
        sock.recv(64)
    frozen.set()
    thread.join(5)
