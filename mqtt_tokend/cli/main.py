"""The command line: parse, set up logging, call into the package. No logic lives here.

Each command imports only what it needs, so `get-token` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mqtt_tokend import __version__
from mqtt_tokend.errors import EX_CONFIG, ConfigError, TokendError

if TYPE_CHECKING:
    from mqtt_tokend.config import Config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald stamps the time itself
LOG_FILE_BYTES = 1_000_000
LOG_FILE_COUNT = 3


def setup_logging(level: str, *, log_file: Path | None = None) -> None:
    """Log to stderr (and a rotating file for the agent); only the CLI sets handlers."""
    from mqtt_tokend.adapters.logsafe import RedactingFilter

    root = logging.getLogger()
    root.setLevel(level)
    redacting = RedactingFilter()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.addFilter(redacting)
    stderr.setFormatter(
        logging.Formatter(JOURNAL_FORMAT if os.environ.get("JOURNAL_STREAM") else LOG_FORMAT)
    )
    root.addHandler(stderr)
    if log_file is not None:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_COUNT, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(redacting)
        root.addHandler(handler)
    for noisy in ("urllib3", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> Config:
    from mqtt_tokend.config import load_config

    return load_config(args.config)


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: the agent in the foreground."""
    from mqtt_tokend.daemon.wiring import serve

    config = _load(args)
    os.umask(0o077)
    state_dir = config.agent.state_dir
    log_file = None
    if state_dir.is_dir() and os.access(state_dir, os.W_OK):
        log_file = state_dir / "auto_token.log"
    setup_logging(args.log_level or config.agent.log_level, log_file=log_file)
    return serve(config)


def cmd_auth(args: argparse.Namespace) -> int:
    """`auth`: headless login."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.authorize(
        config, listen=args.listen, redirect_url=args.redirect_url, timeout=args.timeout
    )


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: what the agent says about itself."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.status(config, as_json=args.json, timeout=args.timeout)


def cmd_check(args: argparse.Namespace) -> int:
    """`check`: one health check now, Nagios exit codes."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.check(config, timeout=args.timeout)


def cmd_health_check(args: argparse.Namespace) -> int:
    """`health-check`: the redundant monitor for a timer or cron."""
    from mqtt_tokend.cli import monitor

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return monitor.health_check(config, timeout=args.timeout)


def cmd_homeassistant(args: argparse.Namespace) -> int:
    """`homeassistant`: publish or remove the discovery messages."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.homeassistant_discovery(config, remove=args.remove, timeout=args.timeout)


def cmd_refresh(args: argparse.Namespace) -> int:
    """`refresh`: ask the running agent to refresh now."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.refresh(config, timeout=args.timeout)


def cmd_get_token(args: argparse.Namespace) -> int:
    """`get-token`: print a valid access token from the broker."""
    import json

    from mqtt_tokend.consumer import fetch_token

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    token = fetch_token(config, app=args.app, timeout=args.timeout)
    print(json.dumps(token) if args.json else token["access_token"])
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """`keygen`: create the Fernet key file."""
    from mqtt_tokend.adapters.crypto import write_key_file

    path = Path(args.key_file) if args.key_file else _load(args).agent.key_file
    write_key_file(path, force=args.force)
    print(f"wrote a new Fernet key to {path} (mode 0600)")
    print(f"consumers need to read it: chgrp <their group> {path} && chmod 640 {path}")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """`rotate-key`: a new primary key, then the agent re-publishes with it."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    setup_logging(args.log_level or "WARNING")
    return commands.rotate_key(config, keep=args.keep, timeout=args.timeout)


def cmd_reset(args: argparse.Namespace) -> int:
    """`reset`: remove stored tokens."""
    from mqtt_tokend.cli import commands

    config = _load(args)
    return commands.reset(config, yes=args.yes)


def cmd_demo(args: argparse.Namespace) -> int:
    """`demo`: the whole product against the built-in emulator."""
    from mqtt_tokend.dev import demo

    setup_logging(args.log_level or "WARNING")
    return demo.run_demo(
        duration=args.duration,
        token_lifetime=args.token_lifetime,
        shared_broker=args.shared_broker,
        state_dir=Path(args.state_dir) if args.state_dir else None,
    )


def cmd_emulator(args: argparse.Namespace) -> int:
    """`emulator`: the Spotify emulator on its own."""
    from mqtt_tokend.dev import emulator

    return emulator.main(args.emulator_args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `mqtt-tokend`."""
    parser = argparse.ArgumentParser(
        prog="mqtt-tokend",
        description="Keep a Spotify session alive and share its token over MQTT.",
    )
    parser.add_argument(
        "--config",
        help="config file (default $MQTT_TOKEND_CONFIG, else /etc/mqtt-tokend/config.toml)",
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        text: str,
        timeout: float | None = None,
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        if timeout is not None:
            p.add_argument(
                "--timeout",
                type=float,
                default=timeout,
                help=f"seconds to wait (default {timeout:g})",
            )
        return p

    p = command("auth", cmd_auth, "one-time headless login", timeout=600)
    p.add_argument(
        "--listen",
        action="store_true",
        help="serve the loopback redirect URI (for an SSH tunnel) instead of pasting",
    )
    p.add_argument("--redirect-url", help="finish the pending login with this redirect URL")
    command("run", cmd_run, "run the agent in the foreground")
    p = command("status", cmd_status, "show the agent's state", timeout=3)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    command(
        "check",
        cmd_check,
        "one health check now (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
        timeout=10,
    )
    command(
        "health-check",
        cmd_health_check,
        "the redundant monitor for a timer or cron: log, notice, alert, e-mail (exit 0-3)",
        timeout=10,
    )
    command("refresh", cmd_refresh, "ask the running agent to refresh now", timeout=30)
    p = command(
        "homeassistant",
        cmd_homeassistant,
        "publish Home Assistant's discovery for the device, or take it away",
        timeout=10,
    )
    p.add_argument("--remove", action="store_true", help="remove the device and its entities")
    p = command(
        "get-token", cmd_get_token, "print a valid access token from the broker", timeout=10
    )
    p.add_argument("--json", action="store_true", help="print the whole token object")
    p.add_argument("--app", action="store_true", help="the client-credentials (app) token")
    p = command("keygen", cmd_keygen, "create the Fernet key file")
    p.add_argument("--key-file", help="where (default: agent.key_file of the config)")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p = command(
        "rotate-key",
        cmd_rotate_key,
        "add a new primary key to the key file (old keys still decrypt) and re-publish",
        timeout=10,
    )
    p.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="keep only the newest N keys, the new one included (default: keep all)",
    )
    p = command("reset", cmd_reset, "remove the stored tokens (emergency recovery)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p = command("demo", cmd_demo, "everything at once against the built-in Spotify emulator")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--token-lifetime",
        type=float,
        default=20.0,
        help="access token lifetime in the emulator (default 20 s)",
    )
    p.add_argument(
        "--private-broker",
        action="store_true",
        help="a private Mosquitto on a free port (the default; kept for old scripts)",
    )
    p.add_argument(
        "--shared-broker",
        nargs="?",
        const="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="use this running broker (default 127.0.0.1:1883) under a base topic and "
        "discovery prefix of the demo's own; everything retained is removed on exit",
    )
    p.add_argument("--state-dir", help="keep the demo's files here (default: a temp dir)")
    p = command("emulator", cmd_emulator, "the Spotify Accounts/Web API emulator")
    p.add_argument(
        "emulator_args",
        nargs=argparse.REMAINDER,
        help="options of the emulator (see `mqtt-tokend emulator --help`)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mqtt-tokend` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if args.command == "emulator":
        args.emulator_args = argv[argv.index("emulator") + 1 :]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        status: int = args.func(args)
    except ConfigError as err:
        print("mqtt-tokend: configuration error:", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return EX_CONFIG
    except TokendError as err:
        print(f"mqtt-tokend: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
