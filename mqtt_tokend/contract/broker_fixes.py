"""What a person does about the broker's side of a connection: a refused login, and a broker
that makes every client of a user share one session. Pure wording, said once."""

from __future__ import annotations

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
