"""One consumer of ours: a `TokenConsumer` asked for the token about every `--poll` s.

Prints `ready` once it holds a token, waits for the end time (Unix seconds) on stdin, loops
until then, and prints its counts as JSON: tokens handed out, distinct tokens, failures,
expired tokens handed out, the longest wait inside `token()` and every wait over SLOW.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path

from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.errors import TokendError

SLOW = 0.1  # seconds: a wait in token() this long is reported


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base-topic", required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--poll", type=float, required=True)
    args = parser.parse_args()

    consumer = TokenConsumer(
        host=args.host, port=args.port, base_topic=args.base_topic, key_file=args.key_file
    ).start()
    consumer.token(timeout=30)
    print("ready", flush=True)
    end = float(sys.stdin.readline())
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    longest_wait = 0.0
    slow: list[list[float]] = []
    time.sleep(random.uniform(0, args.poll))  # as the spotipy workers do
    while time.time() < end:
        asked = time.monotonic()
        try:
            token = consumer.token(timeout=5)
        except TokendError:
            counts["failures"] += 1
            continue
        waited = time.monotonic() - asked
        longest_wait = max(longest_wait, waited)
        if waited > SLOW:  # kept with the token's times, to tell a late agent from a slow us
            slow.append([time.time(), waited, token.issued_at])
        counts["tokens"] += 1
        counts["expired"] += token.expires_at <= time.time()
        seen.add(token.sha256)
        time.sleep(random.uniform(0.5, 1.5) * args.poll)
    # MqttLink logs a deliberate disconnect as a WARNING ("reconnecting"); not news here.
    logging.getLogger("mqtt_tokend.adapters.mqtt").setLevel(logging.ERROR)
    consumer.stop()
    result = {**counts, "distinct": len(seen), "longest_wait": longest_wait, "slow": slow}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
