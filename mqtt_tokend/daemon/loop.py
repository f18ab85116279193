"""The agent's loop: one thread waits on the inbox and hands each item to the agent.

MQTT callbacks only put items into the inbox; the loop waits on it with a timeout that is
the time left until the agent's next deadline (refresh, retry, app token, check, broker
grace), so nothing is polled.
"""

from __future__ import annotations

import queue

from mqtt_tokend.daemon.agent import Agent
from mqtt_tokend.daemon.inbox import InboxItem, Stop


def run(agent: Agent, inbox: queue.Queue[InboxItem]) -> None:
    """Start the agent, then serve the inbox until a Stop item arrives."""
    agent.start()
    while True:
        try:
            item = inbox.get(timeout=agent.seconds_until_next_deadline())
        except queue.Empty:
            item = None
        if isinstance(item, Stop):
            return
        agent.step(item)
