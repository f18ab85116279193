"""Stopping on SIGTERM and SIGINT without doing any work inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes, whatever that thread
holds at the moment: the log filter's lock, a queue's, a buffered writer's. A handler that logs
or puts into a queue can wait forever for a lock its own thread holds. The agent did so once
under load: SIGTERM landed inside a log call, and the agent hung until it was killed, without
its final messages. So the handler here does nothing. Python's C-level handler writes the
signal's number to a pipe (`signal.set_wakeup_fd`), and a thread of our own reads the pipe and
calls `on_stop`. That thread may log and take any lock.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _nothing(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the wakeup pipe carries the signal, nothing else is done."""


def on_stop_signals(
    on_stop: Callable[[str], None], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> None:
    """Call `on_stop(name)` from a thread of its own each time one of `signals` arrives.

    Call it from the main thread (Python's rule for signal handlers).
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # set_wakeup_fd's requirement: a full pipe never blocks
    wanted = {int(s) for s in signals}

    def watch() -> None:
        while True:
            received = os.read(read_end, 64)
            if not received:
                return
            for signum in received:
                if signum in wanted:
                    on_stop(signal.Signals(signum).name)

    threading.Thread(target=watch, name="stop-signals", daemon=True).start()
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in signals:
        signal.signal(signum, _nothing)
