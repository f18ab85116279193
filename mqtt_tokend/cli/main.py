"""The command line: parse, set up logging, call into the package. No logic lives here.

Each command imports only what it needs, so `get-token` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqtt_tokend import __version__
from mqtt_tokend.errors import EX_CONFIG, EX_TEMPFAIL, AgentRunning, ConfigError, TokendError

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


def serve_agent(config: Config, *, log_level: str | None) -> int:
    """`run`: the agent in the foreground, logging to its state directory too."""
    from mqtt_tokend.adapters.store import LOG_FILE
    from mqtt_tokend.daemon.wiring import serve

    os.umask(0o077)
    state_dir = config.agent.state_dir
    log_file = None
    if state_dir.is_dir() and os.access(state_dir, os.W_OK):
        log_file = state_dir / LOG_FILE
    setup_logging(log_level or config.agent.log_level, log_file=log_file)
    return serve(config)


def print_token(config: Config, *, app: bool, timeout: float, as_json: bool) -> int:
    """`get-token`: print a valid access token (or with `as_json` the token object)."""
    import json

    from mqtt_tokend.consumer import fetch_token

    token = fetch_token(config, app=app, timeout=timeout)
    print(json.dumps(token.plaintext()) if as_json else token.access_token)
    return 0


Arguments = Callable[[argparse.Namespace], dict[str, Any]]
COMMANDS_MODULE = "mqtt_tokend.cli.commands"


@dataclass(frozen=True)
class Option:
    """One option or argument of a command, as `add_argument` takes it."""

    flags: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """A row of the command table: what the command is and which function runs it.

    `target` ("module:function") is imported only when the command runs, so `get-token`
    loads neither requests, the daemon nor the emulator. With `config`, the loaded config is
    the function's first argument; `log_level` is the default level of stderr logging (None:
    the command sets up logging itself, or needs none).
    """

    name: str
    text: str
    target: str
    arguments: Arguments = lambda _args: {}
    timeout: float | None = None
    config: bool = True
    log_level: str | None = "WARNING"
    options: tuple[Option, ...] = ()
    own_help: bool = False  # the target parses its own options: `--help` goes to it

    def run(self, args: argparse.Namespace) -> int:
        """Load the config, set up logging, import the target and call it."""
        module, function = self.target.split(":")
        call: Callable[..., int] = getattr(importlib.import_module(module), function)
        if not self.config:
            if self.log_level is not None:
                setup_logging(args.log_level or self.log_level)
            return call(**self.arguments(args))
        from mqtt_tokend.config import load_config

        config = load_config(args.config)
        if self.log_level is not None:
            setup_logging(args.log_level or self.log_level)
        return call(config, **self.arguments(args))


def _flag(name: str, text: str) -> Option:
    return Option((name,), {"action": "store_true", "help": text})


COMMANDS = (
    Command(
        "auth",
        "one-time headless login",
        "mqtt_tokend.cli.login:authorize",
        lambda a: {
            "listen": a.listen,
            "redirect_file": a.redirect_file,
            "redirect_url": a.redirect_url,
            "timeout": a.timeout,
        },
        timeout=600,
        options=(
            _flag(
                "--listen",
                "serve the loopback redirect URI (for an SSH tunnel) instead of pasting",
            ),
            Option(
                ("--redirect-file",),
                {
                    "metavar": "PATH",
                    "help": "finish the pending login with the redirect URL in this file "
                    "(- for standard input)",
                },
            ),
            Option(("--redirect-url",), {"help": argparse.SUPPRESS}),
        ),
    ),
    Command(
        "run",
        "run the agent in the foreground",
        "mqtt_tokend.cli.main:serve_agent",
        lambda a: {"log_level": a.log_level},
        log_level=None,
    ),
    Command(
        "status",
        "show the agent's state",
        "mqtt_tokend.cli.anyone:status_for_anyone",
        lambda a: {"config_file": a.config, "as_json": a.json, "timeout": a.timeout},
        timeout=3,
        config=False,
        options=(_flag("--json", "machine-readable output"),),
    ),
    Command(
        "check",
        "one health check now (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
        f"{COMMANDS_MODULE}:check",
        lambda a: {"timeout": a.timeout},
        timeout=10,
    ),
    Command(
        "health-check",
        "the redundant monitor for a timer or cron: log, notice, alert, e-mail (exit 0-3)",
        "mqtt_tokend.cli.monitor:health_check",
        lambda a: {"timeout": a.timeout},
        timeout=10,
    ),
    Command(
        "refresh",
        "ask the running agent to refresh now",
        f"{COMMANDS_MODULE}:refresh",
        lambda a: {"timeout": a.timeout},
        timeout=30,
    ),
    Command(
        "homeassistant",
        "publish Home Assistant's discovery for the device, or take it away",
        f"{COMMANDS_MODULE}:homeassistant_discovery",
        lambda a: {"remove": a.remove, "timeout": a.timeout},
        timeout=10,
        options=(_flag("--remove", "remove the device and its entities"),),
    ),
    Command(
        "get-token",
        "print a valid access token from the broker",
        "mqtt_tokend.cli.main:print_token",
        lambda a: {"app": a.app, "timeout": a.timeout, "as_json": a.json},
        timeout=10,
        options=(
            _flag("--json", "print the whole token object"),
            _flag("--app", "the client-credentials (app) token"),
        ),
    ),
    Command(
        "keygen",
        "create the Fernet key file",
        f"{COMMANDS_MODULE}:keygen",
        lambda a: {"key_file": a.key_file, "config_file": a.config, "force": a.force},
        config=False,
        log_level=None,
        options=(
            Option(("--key-file",), {"help": "where (default: agent.key_file of the config)"}),
            _flag("--force", "replace an existing key file"),
        ),
    ),
    Command(
        "rotate-key",
        "add a new primary key to the key file (old keys still decrypt) and re-publish",
        f"{COMMANDS_MODULE}:rotate_key",
        lambda a: {"keep": a.keep, "timeout": a.timeout},
        timeout=10,
        options=(
            Option(
                ("--keep",),
                {
                    "type": int,
                    "metavar": "N",
                    "help": "keep only the newest N keys, the new one included (default: keep all)",
                },
            ),
        ),
    ),
    Command(
        "reset",
        "remove the stored tokens (emergency recovery)",
        f"{COMMANDS_MODULE}:reset",
        lambda a: {"yes": a.yes},
        log_level=None,
        options=(_flag("--yes", "do not ask"),),
    ),
    Command(
        "demo",
        "everything at once against the built-in Spotify emulator",
        "mqtt_tokend.dev.demo:run_demo",
        lambda a: {
            "duration": a.duration,
            "token_lifetime": a.token_lifetime,
            "shared_broker": a.shared_broker,
            "state_dir": Path(a.state_dir) if a.state_dir else None,
            "relogin": a.relogin,
        },
        config=False,
        options=(
            Option(("--duration",), {"type": float, "help": "stop after this many seconds"}),
            Option(
                ("--token-lifetime",),
                {
                    "type": float,
                    "default": 20.0,
                    "help": "access token lifetime in the emulator (default 20 s)",
                },
            ),
            _flag(
                "--private-broker",
                "a private Mosquitto on a free port (the default; kept for old scripts)",
            ),
            Option(
                ("--shared-broker",),
                {
                    "nargs": "?",
                    "const": "127.0.0.1:1883",
                    "metavar": "HOST:PORT",
                    "help": "use this running broker (default 127.0.0.1:1883) under a base "
                    "topic and discovery prefix of the demo's own; everything retained is "
                    "removed on exit",
                },
            ),
            Option(("--state-dir",), {"help": "keep the demo's files here (default: a temp dir)"}),
            _flag(
                "--relogin",
                "show the six-month re-login: Spotify ends the login, the agent asks for a "
                "person, the demo logs in again as one would, and the agent is ok again",
            ),
        ),
    ),
    Command(
        "emulator",
        "the Spotify Accounts/Web API emulator",
        "mqtt_tokend.dev.emulator:main",
        lambda a: {"argv": a.emulator_args},
        config=False,
        log_level=None,
        own_help=True,
        options=(
            Option(
                ("emulator_args",),
                {
                    "nargs": argparse.REMAINDER,
                    "help": "options of the emulator (see `mqtt-tokend emulator --help`)",
                },
            ),
        ),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `mqtt-tokend`, one sub-parser per row of `COMMANDS`."""
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
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.text,
            description=command.text,
            add_help=not command.own_help,
        )
        p.set_defaults(command_row=command)
        if command.timeout is not None:
            p.add_argument(
                "--timeout",
                type=float,
                default=command.timeout,
                help=f"seconds to wait (default {command.timeout:g})",
            )
        for option in command.options:
            p.add_argument(*option.flags, **option.settings)
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
        status: int = args.command_row.run(args)
    except ConfigError as err:
        print("mqtt-tokend: configuration error:", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return EX_CONFIG
    except AgentRunning as err:
        print(f"mqtt-tokend: {err}", file=sys.stderr)
        return EX_TEMPFAIL
    except TokendError as err:
        print(f"mqtt-tokend: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
