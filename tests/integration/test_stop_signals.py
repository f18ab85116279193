"""SIGTERM and SIGINT stop the agent even when they land while it holds a lock.

A signal handler runs in the main thread between two bytecodes. Under load, SIGTERM once
landed inside a log call (which holds the redaction filter's lock), and the old handler, which
logged, waited for that lock forever. The agent hung until it was killed. The test recreates
that moment exactly: it holds the lock while the signal arrives, in a real process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from tests.integration.watch import patient

SCRIPT = textwrap.dedent(
    """
    import logging, os, queue, signal, sys
    from mqtt_tokend.adapters import logsafe, signals
    from mqtt_tokend.cli.main import setup_logging

    setup_logging("INFO")
    log = logging.getLogger("agent")
    stops = queue.Queue()

    def on_stop(name):
        log.info("received %s; stopping", name)
        stops.put(name)

    if sys.argv[2] == "logging-handler":  # the old way: work inside the handler
        signal.signal(getattr(signal, sys.argv[1]), lambda n, f: on_stop(signal.Signals(n).name))
    else:
        signals.on_stop_signals(on_stop)
    with logsafe._lock:  # as if the signal landed inside a log call
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        for _ in range(100_000):  # the handler runs at one of these bytecodes
            pass
    print("the main thread went on", flush=True)
    print("stopped by", stops.get(timeout=30), flush=True)
    """
)


def run(signum: signal.Signals, handler: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, signum.name, handler],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_inside_a_log_call_stops(signum: signal.Signals) -> None:
    result = run(signum, "wakeup-pipe", patient(20))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["the main thread went on", f"stopped by {signum.name}"]
    assert f"received {signum.name}; stopping" in result.stderr


def test_a_handler_that_logs_hangs_there() -> None:
    """The hazard itself: with the old handler the same moment never ends."""
    with pytest.raises(subprocess.TimeoutExpired):
        run(signal.SIGTERM, "logging-handler", 3)
