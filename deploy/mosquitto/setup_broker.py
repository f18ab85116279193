#!/usr/bin/env python3
"""Adds mqtt-tokend's broker users, ACL lines and settings to the Mosquitto on this machine
without breaking what is already there. Called by setup_auto_tokens.sh; standard library only
(it runs with the system python3, before or without the virtual environment).

What it does, in order (one module each, beside this file):
  1. reads /etc/mosquitto/mosquitto.conf and every file its include_dir pulls in: listeners,
     password_file, acl_file, allow_anonymous, per_listener_settings, plugins (broker_conf);
  2. models every principal's effective rights from the ACL, as Mosquitto decides them
     (broker_acl), and plans the merge: Home Assistant's account (--ha-user, or asked), our
     users, a marked block at the top of the ACL (anonymous clients) and one at its end
     (broker_plan); the planned ACL is proven against the guarantee list and every outcome
     outside the agent's topics against the old ACL (broker_rights) before anything is written;
  3. writes the planned files to a scratch directory and starts a throwaway `mosquitto -c` on
     free ports from the merged configuration, then logs in as the agent: if that fails, nothing
     is written (broker_install);
  4. installs the files (each created with its final mode), restarts (or reloads) Mosquitto,
     and if that fails removes what it added, puts the previous files back and restarts again.
Where it cannot merge (an auth plugin, dynamic security, per_listener_settings beyond one
listener with its own files, two password files, a Home Assistant account that may write the
agent's topics) it writes nothing and prints what to do. Exit status: 0 done, 1 failed
(nothing changed or rolled back), 3 cannot merge (lines printed, nothing changed), 4 Home
Assistant's account must be named (--ha-user).

  setup_broker.py --root DIR --deploy DEPLOY [--owner USER:GROUP] [--restart CMD]
                  [--lock-down] [--ha-user NAME]
  setup_broker.py --root DIR --deploy DEPLOY --remove      (for --uninstall --purge)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_conf import (
    ADDED_USERS,
    MAIN_CONF,
    OUR_ACL,
    OUR_CONF,
    OUR_DIR,
    OUR_PASSWD,
    CannotMerge,
    Host,
    read_existing,
)
from broker_install import (
    Change,
    agent_login,
    apply,
    restart_or_roll_back,
    say,
    stage_users,
    validate,
    validation_conf,
)
from broker_plan import BEGIN, BEGIN_ANONYMOUS, instructions, plan, without_blocks

EXIT_CANNOT_MERGE = 3
EXIT_NAME_HA = 4


def ask_on_terminal(candidates: list[str]) -> str:
    """The owner's answer to which account Home Assistant uses ("" when not on a terminal)."""
    if not sys.stdin.isatty():
        return ""
    say("Which broker account does Home Assistant log in with? It keeps its rights and gains")
    say(f"Home Assistant's on the agent's topics. Candidates: {', '.join(candidates)}")
    say("(or 'homeassistant' for a new account of that name)")
    try:
        return input("Home Assistant's account: ")
    except EOFError:
        return ""


def install(args: argparse.Namespace) -> int:
    host = Host(args.root)
    deploy = Path(args.deploy)
    on_host = not host.root
    existing = read_existing(host)
    try:
        planned = plan(
            host,
            deploy,
            existing,
            lock_down=args.lock_down,
            ha_user=args.ha_user,
            ask=ask_on_terminal,
        )
    except CannotMerge as error:
        if str(error).startswith("which account does Home Assistant"):
            say(f"Cannot merge yet: {error}. Nothing was changed.")
            return EXIT_NAME_HA
        for line in instructions(error, deploy):
            say(line)
        return EXIT_CANNOT_MERGE
    except RuntimeError as error:
        say(f"{error}. Nothing was changed.")
        return 1

    scratch = Path(tempfile.mkdtemp(prefix="mqtt-tokend-broker-"))
    try:
        staged = stage_users(host, deploy, planned, scratch)
        staged_acl = scratch / "acl"
        staged_acl.write_text(planned.acl_text)
        files = {planned.passwd: staged.passwd, planned.acl: staged_acl}
        conf, ports = validation_conf(host, existing, planned, files)
        validate(conf, ports, scratch, agent_login(staged.credentials))
    except RuntimeError as error:
        say(f"The merged Mosquitto configuration does not work; nothing was changed:\n{error}")
        return 1
    else:
        say(f"broker check passed: a throwaway Mosquitto ran the {planned.mode} configuration")
        group = args.owner.split(":")[-1]
        changes = [
            Change(OUR_CONF, planned.conf.encode(), 0o644, "root:root"),
            Change(planned.acl, planned.acl_text.encode(), 0o640, f"root:{group}"),
            Change(planned.passwd, staged.passwd.read_bytes(), 0o600, args.owner),
            *staged.records,
        ]
        if planned.main is not None:
            changes.append(Change(MAIN_CONF, planned.main.encode(), 0o644, "root:root"))
        made = [d for d in (host.path(OUR_DIR),) if not d.exists()]
        try:
            backups = apply(host, changes, on_host)
        except OSError as error:
            say(f"Mosquitto was left as it was: {error}")
            return 1
        say(f"Home Assistant's account: {planned.ha}")
        for line in planned.report:
            say(f"  {line}")
        for note in planned.notes:
            say(f"note: {note}")
        if not backups:
            return 0
        return restart_or_roll_back(host, args.restart, backups, on_host, made)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove(args: argparse.Namespace) -> int:
    """Undo install: our blocks out of a shared ACL, our users out of a shared password file."""
    host = Host(args.root)
    existing = read_existing(host)
    for acl in set(existing.values("acl_file")) - {OUR_ACL}:
        text = host.read(acl)
        if BEGIN in text or BEGIN_ANONYMOUS in text:
            host.path(acl).write_text(without_blocks(text))
            say(f"removed the mqtt-tokend lines from {acl}")
    added = set(host.read(ADDED_USERS).split())
    for passwd in set(existing.values("password_file")) - {OUR_PASSWD}:
        lines = host.read(passwd).splitlines()
        kept = [line for line in lines if line.split(":", 1)[0] not in added]
        if len(kept) != len(lines):
            host.path(passwd).write_text("".join(f"{line}\n" for line in kept))
            say(f"removed the mqtt-tokend users from {passwd}")
    for path in (host.path(OUR_CONF), host.path(OUR_DIR)):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", default="")
    parser.add_argument("--deploy", required=True)
    parser.add_argument("--owner", default="root:root", help="owner of new broker files")
    parser.add_argument("--restart", help="command that restarts Mosquitto (default systemctl)")
    parser.add_argument("--remove", action="store_true")
    parser.add_argument(
        "--lock-down",
        action="store_true",
        help="replace a stock configuration with the shipped one: no anonymous clients",
    )
    parser.add_argument(
        "--ha-user",
        metavar="NAME",
        help="the broker account Home Assistant already logs in with (default: ask)",
    )
    args = parser.parse_args(argv)
    if args.restart is not None:
        args.restart = args.restart.strip() or None
    return remove(args) if args.remove else install(args)


if __name__ == "__main__":
    sys.exit(main())
