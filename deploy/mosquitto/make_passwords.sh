#!/bin/sh
# Create or update the Mosquitto password file for mqtt-tokend's three broker users:
#   mqtt-tokend    the agent
#   lofi-player    the player (reads the token)
#   homeassistant  Home Assistant (health and commands, never the token)
#
# Each password comes from an option, else the environment, else is generated. Generated
# passwords are written once to a 0600 credentials file (never to the terminal), so you can
# copy them into the player's and Home Assistant's settings.
#
# Idempotent: a user already in the file keeps its password unless one is given; a given
# password that already matches (checked with python3 when present) changes nothing.
# POSIX sh on purpose: it also runs in the eclipse-mosquitto image (busybox) for docker-compose.
set -eu

PASSWD_FILE=/etc/mosquitto/mqtt-tokend/passwd
CREDENTIALS_FILE=
OWNER=
MOSQUITTO_PASSWD=${MOSQUITTO_PASSWD:-mosquitto_passwd}
agent_pw=${MQTT_TOKEND_MQTT_PASSWORD:-}
player_pw=${LOFI_PLAYER_MQTT_PASSWORD:-}
ha_pw=${HOMEASSISTANT_MQTT_PASSWORD:-}

usage() {
    cat <<EOF
Usage: $0 [--file PASSWD] [--credentials FILE] [--owner USER[:GROUP]]
          [--agent PASSWORD] [--player PASSWORD] [--homeassistant PASSWORD]

  --file PASSWD        password file to create or update (default $PASSWD_FILE)
  --credentials FILE   where generated passwords are written, mode 0600
                       (default: 'credentials' beside the password file)
  --owner USER[:GROUP] chown the password file (Mosquitto reads it as its own user)
  --agent, --player, --homeassistant PASSWORD
                       passwords for mqtt-tokend, lofi-player, homeassistant; or set
                       MQTT_TOKEND_MQTT_PASSWORD, LOFI_PLAYER_MQTT_PASSWORD,
                       HOMEASSISTANT_MQTT_PASSWORD. Missing ones are generated.
EOF
}

die() {
    echo "make_passwords.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
        --file) [ $# -ge 2 ] || die "$1 needs a value"; PASSWD_FILE=$2; shift 2 ;;
        --credentials) [ $# -ge 2 ] || die "$1 needs a value"; CREDENTIALS_FILE=$2; shift 2 ;;
        --owner) [ $# -ge 2 ] || die "$1 needs a value"; OWNER=$2; shift 2 ;;
        --agent) [ $# -ge 2 ] || die "$1 needs a value"; agent_pw=$2; shift 2 ;;
        --player) [ $# -ge 2 ] || die "$1 needs a value"; player_pw=$2; shift 2 ;;
        --homeassistant) [ $# -ge 2 ] || die "$1 needs a value"; ha_pw=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[ -n "$CREDENTIALS_FILE" ] || CREDENTIALS_FILE="$(dirname "$PASSWD_FILE")/credentials"
command -v "$MOSQUITTO_PASSWD" >/dev/null 2>&1 \
    || die "$MOSQUITTO_PASSWD not found: install mosquitto (apt install mosquitto)"

# The directory stays traversable (Mosquitto reads the file as its own user); the files are 0600.
umask 022
mkdir -p "$(dirname "$PASSWD_FILE")"
umask 077
[ -e "$PASSWD_FILE" ] || : >"$PASSWD_FILE"

has_user() {
    grep -q "^$1:" "$PASSWD_FILE"
}

# 0: the stored hash matches; 1: it does not; 2: cannot tell (no python3, unknown hash format).
# The password travels in the environment, not on a command line that `ps` shows.
password_matches() {
    command -v python3 >/dev/null 2>&1 || return 2
    MP_USER=$1 MP_PASSWORD=$2 MP_FILE=$PASSWD_FILE python3 - <<'PY'
import base64, hashlib, hmac, os, sys

user, password = os.environ["MP_USER"], os.environ["MP_PASSWORD"].encode()
with open(os.environ["MP_FILE"], encoding="utf-8") as lines:
    for line in lines:
        name, _, entry = line.rstrip("\n").partition(":")
        if name != user:
            continue
        parts = entry.split("$")  # "", "7", iterations, salt, hash: PBKDF2-SHA512
        if len(parts) != 5 or parts[1] != "7":
            sys.exit(2)
        derived = hashlib.pbkdf2_hmac("sha512", password, base64.b64decode(parts[3]), int(parts[2]))
        sys.exit(0 if hmac.compare_digest(base64.b64encode(derived).decode(), parts[4]) else 1)
sys.exit(1)
PY
}

generate_password() {
    head -c 18 /dev/urandom | base64 | tr -d '\n/+='
}

# Drops the user's line from the credentials file (its password is no longer a generated one).
forget() {
    [ -e "$CREDENTIALS_FILE" ] || return 0
    grep -q "^$1:" "$CREDENTIALS_FILE" || return 0
    grep -v "^$1:" "$CREDENTIALS_FILE" >"$CREDENTIALS_FILE.tmp" || true
    mv "$CREDENTIALS_FILE.tmp" "$CREDENTIALS_FILE"
}

# Records a generated password in the credentials file, replacing an older line for the user.
remember() {
    forget "$1"
    printf '%s:%s\n' "$1" "$2" >>"$CREDENTIALS_FILE"
    chmod 0600 "$CREDENTIALS_FILE"
}

# ensure_user USER PASSWORD-OR-EMPTY
ensure_user() {
    user=$1 password=$2
    if has_user "$user"; then
        if [ -z "$password" ]; then
            echo "$user: kept"
            return 0
        fi
        status=0
        password_matches "$user" "$password" || status=$?
        if [ "$status" -eq 0 ]; then
            echo "$user: unchanged"
            return 0
        fi
        "$MOSQUITTO_PASSWD" -b "$PASSWD_FILE" "$user" "$password"
        forget "$user"
        echo "$user: password updated"
    elif [ -n "$password" ]; then
        "$MOSQUITTO_PASSWD" -b "$PASSWD_FILE" "$user" "$password"
        forget "$user"
        echo "$user: added"
    else
        password=$(generate_password)
        "$MOSQUITTO_PASSWD" -b "$PASSWD_FILE" "$user" "$password"
        remember "$user" "$password"
        echo "$user: added with a generated password (in $CREDENTIALS_FILE)"
    fi
}

ensure_user mqtt-tokend "$agent_pw"
ensure_user lofi-player "$player_pw"
ensure_user homeassistant "$ha_pw"

chmod 0600 "$PASSWD_FILE"
if [ -n "$OWNER" ]; then
    chown "$OWNER" "$PASSWD_FILE"
fi
