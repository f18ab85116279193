"""What the one-shot commands do: login, status, check, refresh, key rotation, reset."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from mqtt_tokend.adapters.broker_errors import refused_login
from mqtt_tokend.adapters.crypto import TokenCipher, rotate_key_file, write_key_file
from mqtt_tokend.adapters.mqtt_oneshot import oneshot
from mqtt_tokend.adapters.store import TokenStore, reencrypt
from mqtt_tokend.config import Config, load_config
from mqtt_tokend.contract import wire
from mqtt_tokend.contract.health import ExitCode
from mqtt_tokend.contract.messages import Message
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.contract.wording import auth_command, reauth_row, span
from mqtt_tokend.core.monitor_rules import judge
from mqtt_tokend.errors import BrokerError, BrokerLoginRefused, StoreError


def _store(config: Config) -> tuple[TokenStore, TokenCipher]:
    cipher = TokenCipher.from_file(config.agent.key_file)
    return TokenStore(config.agent.state_dir, cipher=cipher), cipher


def auth_line(config: Config) -> str:
    """The login command as this config's user types it (`sudo mqtt-tokend auth` on a Pi)."""
    return auth_command(str(config.path) if config.path else None)


def read_published(config: Config, *, timeout: float) -> tuple[dict[str, Any] | None, bool | None]:
    """The retained health record and availability from the broker."""
    topics = Topics(config.mqtt.base_topic)
    with oneshot(config.mqtt, timeout=timeout, purpose="status") as session:
        retained = session.retained([topics.health, topics.availability], timeout=timeout)
    return wire.json_object(_payload(retained.get(topics.health))), wire.availability(
        _payload(retained.get(topics.availability))
    )


def _payload(message: Message | None) -> bytes | None:
    return None if message is None else message.payload


def _local_status(config: Config) -> dict[str, Any] | None:
    from mqtt_tokend.adapters.store import read_status

    try:
        return read_status(config.agent.state_dir)
    except StoreError:  # a fallback: the broker's error is the one reported
        return None


def _login_refused(config: Config, error: BrokerLoginRefused) -> str:
    """A refused broker login in one sentence and its fix (the broker is up: never a fallback
    to the status file, which may well say ok)."""
    problem, fix = refused_login(config, error)
    return f"{problem}. {fix}"


def status(config: Config, *, as_json: bool, timeout: float, out: TextIO = sys.stdout) -> int:
    """Print the agent's published state (or its status file when the broker is down)."""
    source = "broker"
    try:
        health, online = read_published(config, timeout=timeout)
    except BrokerLoginRefused as error:
        print(f"mqtt-tokend: {_login_refused(config, error)}", file=sys.stderr)
        return 1
    except BrokerError as error:
        health, online, source = _local_status(config), None, "file"
        if health is None:
            raise
        print(f"mqtt-tokend: {error}; showing the agent's status file", file=sys.stderr)
    if as_json:
        print(
            json.dumps({"source": source, "online": online, "health": health}, indent=2), file=out
        )
        return 0
    if health is None:
        print("No health record on the broker: the agent has never run with this config.", file=out)
        return 1
    print(format_status(health, online=online, now=time.time()), file=out)
    return 0


def _when(value: Any, now: float) -> str:
    if not isinstance(value, int | float):
        return "-"
    stamp = datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    delta = value - now
    rel = f"in {span(delta)}" if delta >= 0 else f"{span(-delta)} ago"
    return f"{stamp} ({rel})"


def format_status(health: dict[str, Any], *, online: bool | None, now: float) -> str:
    """A short table of the health record."""
    agent = {True: "online", False: "offline", None: "unknown"}[online]
    rows = [
        ("state", str(health.get("state"))),
        ("agent", agent),
        ("message", str(health.get("message") or "")),
        ("user", str(health.get("user") or "-")),
        ("token expires", _when(health.get("expires_at"), now)),
        ("last refresh", _when(health.get("last_refresh"), now)),
        ("next refresh", _when(health.get("next_refresh"), now)),
        ("failures", str(health.get("consecutive_failures", 0))),
        ("checked", _when(health.get("checked_at"), now)),
        ("log in again by", reauth_row(health, _when(health.get("reauth_by"), now))),
    ]
    player = health.get("player")
    if isinstance(player, dict):
        active = {True: "has an active user", False: "no active user", None: "unknown"}
        seen = active.get(player.get("active_user")) if player.get("reachable") else "unreachable"
        rows.append(("local player", str(seen)))
    lines = [f"{name:<16}{value}" for name, value in rows]
    if health.get("instructions"):
        lines += ["", f"TO DO: {health['instructions']}"]
    if health.get("login_pending"):
        lines += [
            "",
            "Or open the login link Home Assistant shows (retained on "
            f"{health.get('login_topic')}) and paste where it leads into Home Assistant.",
        ]
    return "\n".join(lines)


def ask_agent(config: Config, verb: str, *, timeout: float) -> dict[str, Any]:
    """Send `<base>/request/<verb>` and return the matching response body."""
    topics = Topics(config.mqtt.base_topic)
    transaction = wire.new_transaction()
    response_topic = topics.response(verb)

    def mine(message: Message) -> bool:
        return wire.answer_to(message.payload, transaction) is not None

    with oneshot(config.mqtt, timeout=timeout, purpose=verb) as session:
        session.subscribe([response_topic], timeout=timeout)
        session.publish(topics.request(verb), wire.request_body(transaction))
        try:
            answer = session.wait_for(response_topic, mine, timeout=timeout)
        except BrokerError:
            raise BrokerError(
                f"the agent did not answer on {response_topic} within {timeout:g} s: is it "
                "running? (`systemctl status lofi-pi-token-manager`)"
            ) from None
    return wire.answer_to(answer.payload, transaction) or {}


def refresh(config: Config, *, timeout: float, out: TextIO = sys.stdout) -> int:
    """Ask the agent to refresh and report what it did."""
    body = ask_agent(config, "refresh", timeout=timeout)
    data = body.get("data") or {}
    if body.get("status") != "ok":
        print(f"refresh failed: {body.get('error')}", file=out)
        if data.get("instructions"):
            print(data["instructions"], file=out)
        return 1
    now = time.time()
    what = "refreshed"
    if not data.get("refreshed"):
        allowed = _when(data.get("next_allowed_at"), now)
        what = f"not needed ({data.get('reason')}; the next refresh is allowed {allowed})"
    print(f"{what}; token valid until {_when(data.get('expires_at'), now)}", file=out)
    return 0


def check(config: Config, *, timeout: float, out: TextIO = sys.stdout) -> int:
    """Ask the agent to check now and judge the answer; fall back to the retained record."""
    try:
        body = ask_agent(config, "check", timeout=timeout)
        health: dict[str, Any] | None = body.get("data")
        online: bool | None = True
    except BrokerLoginRefused as error:
        print(f"CRITICAL: {_login_refused(config, error)}", file=out)
        return int(ExitCode.CRITICAL)
    except BrokerError as error:
        try:
            health, online = read_published(config, timeout=min(timeout, 3.0))
        except BrokerError:
            health, online = _local_status(config), None  # the agent's own word, on disk
            if health is None:
                print(f"UNKNOWN: {error}", file=out)
                return int(ExitCode.UNKNOWN)
    code, why = judge(health, online=online, now=time.time())
    print(f"{code.name}: {why}", file=out)
    return int(code)


def reset(config: Config, *, yes: bool, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Delete the stored tokens after confirmation."""
    state_dir = config.agent.state_dir
    if not yes:
        print(
            f"This deletes the Spotify login stored in {state_dir}. Type 'yes' to go on: ",
            end="",
            file=out,
            flush=True,
        )
        if stdin.readline().strip().lower() != "yes":
            print("nothing deleted", file=out)
            return 1
    from mqtt_tokend.adapters.store import remove_login

    removed = [path.name for path in remove_login(state_dir)]
    print(f"removed: {', '.join(removed) or 'nothing (no login was stored)'}", file=out)
    print(f"log in again with `{auth_line(config)}`", file=out)
    return 0


def rotate_key(
    config: Config,
    *,
    keep: int | None,
    timeout: float,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Add a new primary key to the key file, then have the agent re-publish with it."""
    path = config.agent.key_file

    def reencrypt_state(cipher: TokenCipher) -> None:
        # The stored login must not depend on a key about to be retired.
        try:
            reencrypt(config.agent.state_dir, cipher)
        except StoreError as error:
            raise StoreError(
                f"{error}. The new key was added and no key was retired; run rotate-key "
                "again as the agent's user"
            ) from None

    count = rotate_key_file(path, keep=keep, before_retiring=reencrypt_state)
    print(f"added a new primary key to {path}: {count} keys, the first encrypts", file=out)
    try:
        republished = _republish(config, TokenCipher.from_file(path), timeout=timeout)
    except BrokerError as error:
        print(
            f"mqtt-tokend: {error}; the agent takes the new key up at its next check or start",
            file=err,
        )
        return 0
    if not republished:
        print(
            "mqtt-tokend: the agent answered but still publishes with an old key: can it read "
            f"{path}? See its log (`sudo journalctl -u lofi-pi-token-manager`).",
            file=err,
        )
        return 1
    print("the agent re-published the token with the new key", file=out)
    return 0


def _republish(config: Config, cipher: TokenCipher, *, timeout: float) -> bool:
    """Wake the agent with `request/check`; True once the retained token uses the new key."""
    topics = Topics(config.mqtt.base_topic)
    transaction = wire.new_transaction()

    def answered(message: Message) -> bool:
        return wire.answer_to(message.payload, transaction) is not None

    def new_key(message: Message) -> bool:
        return not message.payload or cipher.is_primary(message.payload)

    with oneshot(config.mqtt, timeout=timeout, purpose="rotate-key") as session:
        session.subscribe([topics.token, topics.response("check")], timeout=timeout)
        body = wire.request_body(transaction, reason="key rotated")
        session.publish(topics.request("check"), body)
        try:
            session.wait_for(topics.response("check"), answered, timeout=timeout)
        except BrokerError:
            raise BrokerError(f"the agent did not answer within {timeout:g} s") from None
        try:
            session.wait_for(topics.token, new_key, timeout=timeout)
        except BrokerError:
            return False
    return True


def homeassistant_discovery(
    config: Config, *, remove: bool, timeout: float, out: TextIO = sys.stdout
) -> int:
    """Publish (or with `remove`, take away) the Home Assistant device, retained."""
    from mqtt_tokend import __version__
    from mqtt_tokend.contract import homeassistant

    ha, base = config.homeassistant, config.mqtt.base_topic
    messages = homeassistant.device_messages(
        enabled=not remove,
        base_topic=base,
        discovery_prefix=ha.discovery_prefix,
        version=__version__,
        check_interval=config.agent.check_interval,
        configuration_url=ha.configuration_url,
    )
    with oneshot(config.mqtt, timeout=timeout, purpose="discovery") as session:
        for topic, payload in messages:
            session.publish(topic, payload, retain=True, timeout=timeout)
    if remove:
        print(f"removed {len(messages)} Home Assistant entities of {base}", file=out)
        if ha.enabled:
            print(
                "set homeassistant.enabled = false, or the running agent publishes them "
                "again when it reconnects",
                file=out,
            )
    else:
        print(f"published {len(messages)} Home Assistant entities of {base}", file=out)
    return 0


def keygen(*, key_file: str | None, config_file: str | None, force: bool) -> int:
    """`keygen`: create the Fernet key file (where the config says, unless told)."""
    path = Path(key_file) if key_file else load_config(config_file).agent.key_file
    try:
        write_key_file(path, force=force)
    except PermissionError:
        print(
            f"mqtt-tokend: cannot write {path} (permission denied). On an installed Pi the "
            "installer makes the key with its owner and group: run `sudo "
            "deploy/setup_auto_tokens.sh` in the checkout (it keeps an existing key); to add "
            "a new key to an existing one: `sudo mqtt-tokend rotate-key`",
            file=sys.stderr,
        )
        return 1
    except OSError as err:
        print(f"mqtt-tokend: cannot write {path}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"wrote a new Fernet key to {path} (mode 0600)")
    # The layout the installer makes: the consumers' group reads the key, and nothing else.
    print(
        "consumers read it through the group mqtt-tokend-key, as an install sets it up: "
        f"sudo groupadd -f --system mqtt-tokend-key && sudo chgrp mqtt-tokend-key {path} "
        f"&& sudo chmod 0440 {path}"
    )
    return 0
