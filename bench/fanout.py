"""Fan-out: many separate MQTT 5 subscribers on one topic, spread over a few processes.

`Fleet` (in the benchmark) starts the processes; each runs this file as a script with its
share of the clients and prints `<client> <arrival time>` per message. Arrival times are
`time.perf_counter()`, which is CLOCK_MONOTONIC on Linux and so comparable across processes.
Separate processes keep the measurement from queueing 50 paho threads on one GIL.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

from harness import TIMEOUT, mqtt_client


class Subscribers:
    """`count` MQTT 5 clients in this process, each calling `report(index, arrival)`."""

    def __init__(
        self, host: str, port: int, topic: str, count: int, report: Callable[[int, float], None]
    ) -> None:
        self._subscribed = threading.Semaphore(0)
        self.clients = []
        for index in range(count):
            client = mqtt_client(host, port)
            client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
            client.on_subscribe = lambda *_: self._subscribed.release()
            client.on_message = lambda *_, i=index: report(i, time.perf_counter())
            client.connect(host, port)
            client.loop_start()
            self.clients.append(client)
        for _ in range(count):
            if not self._subscribed.acquire(timeout=TIMEOUT):
                raise SystemExit("a fan-out subscriber did not subscribe")

    def close(self) -> None:
        """Disconnect them all."""
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


class Fleet:
    """`count` subscribers in `processes` processes; knows when each message reached them all."""

    def __init__(self, host: str, port: int, topic: str, count: int, processes: int) -> None:
        self._cond = threading.Condition()
        self.arrivals: list[list[float]] = [[] for _ in range(count)]
        self._ready = 0
        shares = [count // processes + (p < count % processes) for p in range(processes)]
        self._workers = []
        offset = 0
        for share in shares:
            worker = subprocess.Popen(
                [sys.executable, __file__, host, str(port), topic, str(share)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            threading.Thread(target=self._read, args=(worker, offset), daemon=True).start()
            self._workers.append(worker)
            offset += share
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready == len(shares), TIMEOUT):
                self.close()
                raise SystemExit("the fan-out subscribers did not start")

    def _read(self, worker: subprocess.Popen[str], offset: int) -> None:
        for line in worker.stdout or ():
            with self._cond:
                if line.startswith("ready"):
                    self._ready += 1
                else:
                    index, arrival = line.split()
                    self.arrivals[offset + int(index)].append(float(arrival))
                self._cond.notify_all()

    def wait_all(self, count: int) -> tuple[float, float]:
        """Block until every subscriber has `count` messages; first and last arrival of the last."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: min(len(a) for a in self.arrivals) >= count, TIMEOUT
            ):
                raise SystemExit(f"timed out waiting for message {count} at every subscriber")
            times = [a[count - 1] for a in self.arrivals]
        return min(times), max(times)

    def close(self) -> None:
        """End the worker processes (they disconnect when their stdin closes)."""
        for worker in self._workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in self._workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _worker(host: str, port: str, topic: str, count: str) -> None:
    lock = threading.Lock()

    def report(index: int, arrival: float) -> None:
        with lock:
            sys.stdout.write(f"{index} {arrival!r}\n")
            sys.stdout.flush()

    subscribers = Subscribers(host, int(port), topic, int(count), report)
    with lock:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
    sys.stdin.read()  # until the benchmark closes our stdin
    subscribers.close()


if __name__ == "__main__":
    _worker(*sys.argv[1:5])
