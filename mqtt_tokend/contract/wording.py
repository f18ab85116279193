"""The words a person reads: what happened and what to do, said once for every place.

Health (and so Home Assistant), the notice file, the alerts, `status` and `health-check` all
take their words from here, so a fix is said the same way everywhere. Also durations,
one-line reasons and who is logged in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def span(seconds: float) -> str:
    """A duration in the largest unit that still reads as a whole number: `90 s`, `3 h`."""
    seconds = int(seconds)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def one_line(text: str) -> str:
    """The text with every run of white space (newlines too) folded into one space."""
    return " ".join(text.split())


def user_name(profile: Mapping[str, Any]) -> str | None:
    """What to call a Spotify user: the display name, else the user id, else None."""
    for key in ("display_name", "id"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            return value
    return None


SERVICE = "lofi-pi-token-manager"
INSTALLED_CONFIG = "/etc/mqtt-tokend/config.toml"

# ---- what happened ----------------------------------------------------------------------

LOGIN_ENDED = "Spotify ended this login: it was revoked, or six months have passed"


def login_ends_in(days: float) -> str:
    """A `reauth_soon` reminder: Spotify ends the login in `days`."""
    return f"Spotify ends this login in {days:.1f} days; log in again before then"


# ---- what to do (one line each) -----------------------------------------------------------


def auth_command(config_path: str | None) -> str:
    """The login command for this config. An installed Pi (a config in /etc/mqtt-tokend) has
    /usr/local/bin/mqtt-tokend, which runs it as the agent's user with the installed config."""
    if config_path == INSTALLED_CONFIG:
        return "sudo mqtt-tokend auth"
    config = f" --config {config_path}" if config_path else ""
    sudo = "sudo " if config_path and config_path.startswith("/etc/mqtt-tokend/") else ""
    return f"{sudo}mqtt-tokend{config} auth"


def auth_instructions(config_path: str | None) -> str:
    """What a person does to log in again: the one line every place shows."""
    return (
        f"Log in again. On the Pi run: {auth_command(config_path)}  and open the link it "
        "prints on any device, or tap the login link Home Assistant shows."
    )


def broker_instructions(config_path: str | None) -> str:
    """What a person does about a broker that cannot be reached."""
    where = config_path or "the configuration"
    return (
        "Start or fix the broker: sudo systemctl status mosquitto  and  sudo journalctl -u "
        f"mosquitto -n 50; check mqtt.host, mqtt.port and the credentials in {where}"
    )


CLIENT_FIX = "Fix spotify.client_id / spotify.client_secret in the config, then restart the agent."


def client_fix(config_path: str | None) -> str:
    """What a person does when Spotify refuses the client id or secret."""
    where = config_path or "the config file"
    return (
        f"Spotify refused the client: fix spotify.client_id and spotify.client_secret in {where} "
        f"(as shown in your app on developer.spotify.com), then: sudo systemctl restart {SERVICE}"
    )


RESTART_INSTRUCTIONS = (
    f"Restart the agent: sudo systemctl restart {SERVICE}  and see why it stopped: "
    f"sudo journalctl -u {SERVICE} -n 50"
)


def refresh_instructions(config_path: str | None) -> str:
    """What a person does when the agent cannot refresh and says nothing more."""
    config = f" --config {config_path}" if config_path else ""
    return (
        f"See why the agent cannot refresh: sudo journalctl -u {SERVICE} -n 50  then ask it "
        f"to try again: mqtt-tokend{config} refresh  (or: sudo systemctl restart {SERVICE})"
    )


# ---- `status` -----------------------------------------------------------------------------


def reauth_row(health: Mapping[str, Any], when: str) -> str:
    """The `log in again by` row of `status`: the deadline only while the login still works
    (a login on offer or `auth_required` means Spotify has already ended it)."""
    if health.get("state") == "auth_required" or health.get("login_pending"):
        return "now (see TO DO below)"
    return when


# The one answer to every refused paste (on `response/auth` and in the `auth_failed` alert).
REFUSED = (
    "the pasted login was not accepted; the same login link stays valid: open it, approve, "
    "and paste the whole address your browser ends on"
)
REFUSED_FIX = (
    "Open the same login link again (the login card in Home Assistant), approve, and paste "
    "the whole address your browser ends on into Login redirect URL."
)


# ---- The broker's side of a connection: a refused login, a forced shared session ----

BROKER_PASSWD = "/etc/mosquitto/mqtt-tokend/passwd"  # the installer's broker password file
BROKER_CONF = "/etc/mosquitto/conf.d/mqtt-tokend.conf"  # the installer's Mosquitto settings


def login_refused_instructions(user: str, source: str) -> str:
    """What a person does when the broker refuses the password from `source` (never the
    password itself): make the broker and that file agree."""
    if not user:
        return (
            "This broker lets no anonymous client in: set mqtt.username and mqtt.password_file "
            "in the configuration (the installer's user is mqtt-tokend, its password in "
            "/etc/mqtt-tokend/mqtt_password)"
        )
    return (
        f"Make the broker and {source} agree on the password of '{user}': put the broker's "
        f"password there, or give '{user}' that password on the broker: sudo mosquitto_passwd "
        f"{BROKER_PASSWD} {user}  (or the password_file your Mosquitto configuration names), "
        "then: sudo systemctl reload mosquitto"
    )


def forced_client_id_warning(user: str) -> str:
    """What a person reads when the broker gives every client of `user` one session."""
    return (
        f"this broker makes every client of '{user}' share one session "
        "(use_username_as_clientid true), so this connection has just disconnected every "
        f"other client logged in as '{user}' (the agent, a player). Remove that line and "
        f"restart Mosquitto: sudo sed -i '/^use_username_as_clientid/d' {BROKER_CONF} && "
        "sudo systemctl restart mosquitto  (mqtt-tokend gives each of its connections a client "
        "id of its own)"
    )
