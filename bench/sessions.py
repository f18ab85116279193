"""Disconnected sessions in a household on the shipped broker: prints one markdown table.

    .venv/bin/python bench/sessions.py [--commands 100] [--health-checks 10] [--forced]

Starts Mosquitto from deploy/mosquitto/ (the shipped mosquitto.conf, ACL and passwords), the
Spotify emulator, a logged-in agent (`mqtt-tokend run`) and two TokenConsumers of the player's
user, then runs the CLI commands (status, check, get-token as the player, refresh, in turn)
and the health checks two at a time beside them, as real subprocesses. Counts every session
another one ended: Mosquitto's "already connected, closing old connection", the agent's and
the consumers' own disconnects, and `offline` on availability. The goal is 0 everywhere.
--forced appends `use_username_as_clientid true` to the broker (the setting older installs
shipped), to show what the count was.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.household import household  # noqa: E402 (the repository's test helpers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--health-checks", type=int, default=10)
    parser.add_argument("--forced", action="store_true", help="use_username_as_clientid true")
    args = parser.parse_args()
    extra = "use_username_as_clientid true\n" if args.forced else ""
    with tempfile.TemporaryDirectory(prefix="mqtt-tokend-sessions-") as scratch:
        directory = Path(scratch)
        directory.chmod(0o755)  # Mosquitto reads its files after dropping root
        with household(directory, extra_conf=extra) as house:
            started = time.monotonic()
            house.stream(commands=args.commands, health_checks=args.health_checks)
            elapsed = time.monotonic() - started
            tally = house.tally()
            failures = list(house.failures)
    broker = "shipped broker" + (" + use_username_as_clientid true" if args.forced else "")
    print(
        f"{args.commands} CLI commands and {args.health_checks} health checks, two at a time, "
        f"beside the agent and two consumers of one user ({broker}; {elapsed:.0f} s)\n"
    )
    print("| count | value |\n|---|---|")
    for name, value in tally.items():
        print(f"| {name} | {value} |")
    for failure in failures[:5]:
        print(f"\nfailed: {failure.strip()[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
