#!/usr/bin/env bash
# Installs mqtt-tokend on a Raspberry Pi (or any Debian-like system) from this repository:
# the user and group mqtt-tokend, /etc/mqtt-tokend (config, Fernet key), /var/lib/mqtt-tokend
# (state, 0700), a virtual environment in /opt/mqtt-tokend/venv, the Mosquitto users and ACL,
# and the systemd units (or the cron line). Idempotent: a second run changes nothing. It never
# overwrites the key, the config or a broker password nobody asked to change.
#
#   sudo deploy/setup_auto_tokens.sh              install or update (Mosquitto's stock config
#                                                 keeps its anonymous clients on loopback)
#   sudo deploy/setup_auto_tokens.sh --lock-down-broker
#                                                 same, with the shipped broker config on a
#                                                 stock Mosquitto: no anonymous clients
#   sudo deploy/setup_auto_tokens.sh --uninstall  stop the agent, take its retained messages and
#                                                 Home Assistant device off the broker, remove
#                                                 units, cron line, venv and the
#                                                 /usr/local/bin/mqtt-tokend wrapper; keep data
#   sudo deploy/setup_auto_tokens.sh --purge      all that, and remove config, key, state, broker
#                                                 files, and the user (any order, any number of
#                                                 times: each run finishes what is left)
#   deploy/setup_auto_tokens.sh --root DIR        install into a staging tree; the host is not
#                                                 touched (no useradd, chown or systemctl: those
#                                                 are printed as "would run:")
set -euo pipefail
# Files are public unless a step makes them secret: every secret is written inside a
# `umask 077` subshell, so it is never readable by others, not even before its chmod.
umask 022

readonly SELF="${BASH_SOURCE[0]}"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
readonly REPO
readonly DEPLOY="$REPO/deploy"

readonly APP_USER=mqtt-tokend
readonly APP_GROUP=mqtt-tokend
# Consumers (the player) join this group to read the Fernet key, and only the key: not the
# config (client_secret) nor the agent's broker password, which stay with group mqtt-tokend.
readonly KEY_GROUP=mqtt-tokend-key
readonly WRAPPER=/usr/local/bin/mqtt-tokend
readonly CONFIG_DIR=/etc/mqtt-tokend
readonly STATE_DIR=/var/lib/mqtt-tokend
readonly PREFIX=/opt/mqtt-tokend
readonly VENV=$PREFIX/venv
readonly UNIT_DIR=/etc/systemd/system
readonly CRON_FILE=/etc/cron.d/mqtt-tokend
readonly MOSQUITTO_CONF=/etc/mosquitto/conf.d/mqtt-tokend.conf
readonly MOSQUITTO_DIR=/etc/mosquitto/mqtt-tokend
readonly UNITS=(
    lofi-pi-token-manager.service
    lofi-pi-token-manager@.service
    lofi-pi-token-health.service
    lofi-pi-token-health.timer
)
readonly CLI="$VENV/bin/mqtt-tokend --config $CONFIG_DIR/config.toml"

ROOT=""
ACTION=install
PURGE=0
WITH_VENV=1
WITH_MOSQUITTO=1
USE_CRON=0
PYTHON=${PYTHON:-python3}
UNITS_CHANGED=0
BROKER_RESTART=""
LOCK_DOWN=0
HA_USER=""

usage() {
    cat <<EOF
Usage: $SELF [--root DIR] [--no-venv] [--no-mosquitto] [--lock-down-broker] [--cron]
       [--python PATH] [--ha-user NAME]
       $SELF [--root DIR] [--broker-restart CMD] --uninstall [--purge]
       $SELF [--root DIR] [--broker-restart CMD] --purge

  --root DIR      install into DIR as if it were / (for packaging and tests); nothing on the
                  host changes, and host-only steps are printed as "would run: ..."
  --no-venv       skip the virtual environment (and the pip install)
  --no-mosquitto  leave Mosquitto alone (default: configure it when it is installed)
  --lock-down-broker
                  on Mosquitto's stock configuration, install the shipped one: no anonymous
                  clients, no packet above 16 KiB (for a Pi where
                  nothing else uses the broker). Default: anonymous clients on loopback keep
                  every topic except the agent's
  --ha-user NAME  the broker account Home Assistant already logs in with: it keeps its
                  rights and gains Home Assistant's on the agent's topics (default: ask
                  when there are candidates; 'homeassistant' makes a new account)
  --cron          install $CRON_FILE instead of enabling the systemd timer
  --python PATH   the Python (3.11 or newer) that builds the venv (default: python3)
  --broker-restart CMD
                  how to restart Mosquitto after its files changed (default: systemctl
                  restart mosquitto.service; with --root the default only prints it, and
                  with --root and this option the staged broker is a live one: --uninstall
                  and --purge clear it)
  --uninstall     stop the agent, clear its retained messages and Home Assistant device
                  from the broker, remove the units, the cron line and $PREFIX; keep
                  config, key, state
  --purge         --uninstall, and remove $CONFIG_DIR, $STATE_DIR, the broker's mqtt-tokend
                  files, and the user and group $APP_USER

Environment: MQTT_TOKEND_KEEP_RETAINED=1 makes --uninstall and --purge leave the agent's
retained messages on the broker (when it cannot be reached and never will be again).
EOF
}

# Temporary files and directories, removed however the script ends.
SCRATCH=()
cleanup() { [[ ${#SCRATCH[@]} -eq 0 ]] || rm -rf "${SCRATCH[@]}"; }
trap cleanup EXIT

say() { printf '%s\n' "$*"; }
die() {
    printf 'setup_auto_tokens.sh: %s\n' "$*" >&2
    exit 1
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --root)
            [[ $# -ge 2 ]] || die "--root needs a directory"
            ROOT=$2
            shift 2
            ;;
        --no-venv) WITH_VENV=0; shift ;;
        --no-mosquitto) WITH_MOSQUITTO=0; shift ;;
        --lock-down-broker) LOCK_DOWN=1; shift ;;
        --ha-user)
            [[ $# -ge 2 ]] || die "--ha-user needs a broker user name"
            HA_USER=$2
            shift 2
            ;;
        --cron) USE_CRON=1; shift ;;
        --python)
            [[ $# -ge 2 ]] || die "--python needs a path"
            PYTHON=$2
            shift 2
            ;;
        --broker-restart)
            [[ $# -ge 2 ]] || die "--broker-restart needs a command"
            BROKER_RESTART=$2
            shift 2
            ;;
        --uninstall) ACTION=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ $PURGE -eq 0 ]] || ACTION=uninstall

if [[ -n $ROOT ]]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [[ $ROOT != / ]] || die "--root / is the host: leave --root out instead"
elif [[ $(id -u) -ne 0 ]]; then
    die "run as root (sudo), or pass --root DIR to stage an install"
fi

on_host() { [[ -z $ROOT ]]; }
systemd_running() { on_host && [[ -d /run/systemd/system ]]; }

# chown that only happens on the host, and only to a user and group that exist.
host_chown() {
    local owner=$1 path=$2
    on_host || return 0
    if id -u "${owner%%:*}" >/dev/null 2>&1 && getent group "${owner##*:}" >/dev/null; then
        chown "$owner" "$path"
    fi
}

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
    local dir=$ROOT$1 mode=$2 owner=$3
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        say "created $1"
    fi
    chmod "$mode" "$dir"
    host_chown "$owner" "$dir"
}

# install_file SOURCE TARGET MODE OWNER:GROUP; returns 0 when TARGET changed, 1 when it did not.
install_file() {
    local source=$1 target=$ROOT$2 mode=$3 owner=$4
    if [[ -f $target ]] && cmp -s "$source" "$target"; then
        chmod "$mode" "$target"
        host_chown "$owner" "$target"
        return 1
    fi
    mkdir -p "$(dirname "$target")"
    install -m "$mode" "$source" "$target.new"
    host_chown "$owner" "$target.new"
    mv -f "$target.new" "$target"
    say "installed $2"
    return 0
}

# create_once TARGET MODE OWNER:GROUP COMMAND...: writes COMMAND's output to TARGET only if TARGET
# does not exist yet (keys and configs are never overwritten).
create_once() {
    local name=$1 target=$ROOT$1 mode=$2 owner=$3
    shift 3
    if [[ -e $target ]]; then
        say "kept $name"
        return 0
    fi
    if ! (umask 077 && "$@" >"$target.new"); then
        rm -f "$target.new"
        die "could not create $name"
    fi
    chmod "$mode" "$target.new"
    host_chown "$owner" "$target.new"
    mv -n "$target.new" "$target"
    rm -f "$target.new"
    say "created $name"
}

ensure_user() {
    if on_host; then
        getent group "$APP_GROUP" >/dev/null || groupadd --system "$APP_GROUP"
        getent group "$KEY_GROUP" >/dev/null || groupadd --system "$KEY_GROUP"
        if ! id -u "$APP_USER" >/dev/null 2>&1; then
            useradd --system --gid "$APP_GROUP" --home-dir "$STATE_DIR" --no-create-home \
                --shell /usr/sbin/nologin --comment "mqtt-tokend Spotify token agent" "$APP_USER"
            say "created user $APP_USER"
        fi
    else
        say "would run: groupadd --system $APP_GROUP; groupadd --system $KEY_GROUP (if missing)"
        say "would run: useradd --system --gid $APP_GROUP --home-dir $STATE_DIR" \
            "--no-create-home --shell /usr/sbin/nologin $APP_USER (if missing)"
    fi
}

# A digest of the files the package is built from, so an unchanged source skips pip.
source_digest() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum |
        cut -d' ' -f1
}

setup_venv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$PYTHON is missing or older than 3.11 (use --python PATH)"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
        die "$PYTHON cannot make virtual environments: apt install python3-venv"
    local venv=$ROOT$VENV staging digest
    staging="$(mktemp -d)"
    SCRATCH+=("$staging")
    # Build from a clean copy: no build/ or *.egg-info left in the repository, and a stable
    # input for the digest.
    tar -C "$REPO" --exclude=./.git --exclude=./tests --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude='.*_cache' --exclude=./.venv \
        --exclude=./venv --exclude=node_modules -cf - . | tar -C "$staging" -xf -
    digest="$(source_digest "$staging")"
    if [[ -x $venv/bin/mqtt-tokend && -f $venv/.source-sha256 ]] &&
        [[ $(<"$venv/.source-sha256") == "$digest" ]]; then
        say "kept $VENV (the package is up to date)"
    else
        if [[ ! -x $venv/bin/python ]]; then
            "$PYTHON" -m venv "$venv"
            say "created $VENV"
        fi
        say "installing the package into $VENV (pip) ..."
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
            "$staging"
        printf '%s\n' "$digest" >"$venv/.source-sha256"
        say "installed mqtt-tokend into $VENV"
    fi
    rm -rf "$staging"
}

generate_key() {
    # Fernet.generate_key() is urlsafe base64 of 32 random bytes; without the venv the standard
    # library makes the same thing.
    if [[ -x $ROOT$VENV/bin/python ]]; then
        "$ROOT$VENV/bin/python" -c \
            'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
    else
        "$PYTHON" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
    fi
}

# The agent's broker password, for mqtt.password_file: taken from the credentials file that
# make_passwords.sh writes when it generated the password.
agent_password() {
    local credentials=$ROOT$MOSQUITTO_DIR/credentials
    if [[ -n ${MQTT_TOKEND_MQTT_PASSWORD:-} ]]; then
        printf '%s\n' "$MQTT_TOKEND_MQTT_PASSWORD"
    else
        { grep "^$APP_USER:" "$credentials" 2>/dev/null || true; } | cut -d: -f2-
    fi
}

# What the broker step records beside the broker's files: the generated passwords, and the
# users it added to a password file that is not ours. A failed step (a broker that did not
# restart, and was rolled back) must leave none of it behind, so each is saved first and put
# back (or removed) afterwards.
readonly BROKER_RECORDS=("$MOSQUITTO_DIR/credentials" "$MOSQUITTO_DIR/added-users")

save_broker_records() {
    local saved=$1 path
    for path in "${BROKER_RECORDS[@]}"; do
        if [[ -e $ROOT$path ]]; then cp -p "$ROOT$path" "$saved/${path##*/}"; fi
    done
}

restore_broker_records() {
    local saved=$1 path
    for path in "${BROKER_RECORDS[@]}"; do
        if [[ -e $saved/${path##*/} ]]; then
            if ! cmp -s "$saved/${path##*/}" "$ROOT$path"; then
                (umask 077 && cp -p "$saved/${path##*/}" "$ROOT$path")
                say "restored $path"
            fi
        elif [[ -e $ROOT$path ]]; then
            rm -f "$ROOT$path"
            say "removed $path"
        fi
    done
}

setup_mosquitto() {
    if [[ $WITH_MOSQUITTO -eq 0 ]]; then
        say "skipped Mosquitto (--no-mosquitto)"
        return 0
    fi
    if ! command -v mosquitto_passwd >/dev/null 2>&1; then
        say "skipped Mosquitto: it is not installed (apt install mosquitto, then run this again)"
        return 0
    fi
    local broker=root:root
    if on_host && getent group mosquitto >/dev/null && id -u mosquitto >/dev/null 2>&1; then
        broker=mosquitto:mosquitto
    fi
    # Reads the existing setup, merges ours into it, checks the result on a throwaway broker,
    # and restarts Mosquitto (rolling back if it does not come up): see setup_broker.py.
    local args=(--root "$ROOT" --deploy "$DEPLOY" --owner "$broker") status=0 saved made=0
    [[ -z $BROKER_RESTART ]] || args+=(--restart "$BROKER_RESTART")
    [[ $LOCK_DOWN -eq 0 ]] || args+=(--lock-down)
    [[ -z $HA_USER ]] || args+=(--ha-user "$HA_USER")
    # Our directory exists before the secret step, so the umask 077 below never makes it 0700
    # (Mosquitto reads the password file in it as its own user).
    if [[ ! -d $ROOT$MOSQUITTO_DIR ]]; then
        mkdir -p "$ROOT$MOSQUITTO_DIR"
        made=1
    fi
    saved="$(mktemp -d)"
    SCRATCH+=("$saved")
    save_broker_records "$saved"
    # The password file and the credentials are written here: created 0600 from the first byte.
    (umask 077 && "$PYTHON" "$DEPLOY/mosquitto/setup_broker.py" "${args[@]}") || status=$?
    if [[ $status -ne 0 ]]; then
        restore_broker_records "$saved"
        if [[ $made -eq 1 ]]; then rmdir "$ROOT$MOSQUITTO_DIR" 2>/dev/null || true; fi
    fi
    case $status in
        0) ;;
        3)
            say "Mosquitto was left unchanged: add the lines above, then run this again"
            return 0
            ;;
        4)
            say "Mosquitto was left unchanged: run this again with --ha-user NAME (above)"
            return 0
            ;;
        *) die "Mosquitto was left as it was (see above); nothing else of its setup changed" ;;
    esac
    install_file "$DEPLOY/mosquitto/tls.conf" "$MOSQUITTO_DIR/tls.conf" 0644 root:root || true
    install_file "$DEPLOY/mosquitto/bridge.conf.example" "$MOSQUITTO_DIR/bridge.conf.example" \
        0644 root:root || true
    install_file "$DEPLOY/mosquitto/make_passwords.sh" "$MOSQUITTO_DIR/make_passwords.sh" \
        0755 root:root || true

    if [[ ! -e $ROOT$CONFIG_DIR/mqtt_password ]] && [[ -n "$(agent_password)" ]]; then
        create_once "$CONFIG_DIR/mqtt_password" 0600 "$APP_USER:$APP_GROUP" agent_password
    fi
}

setup_config() {
    local template=$DEPLOY/config.example.toml
    [[ -f $template ]] || die "$template is missing"
    if [[ -e $ROOT$CONFIG_DIR/config.toml ]]; then
        say "kept $CONFIG_DIR/config.toml"
        return 0
    fi
    local staged
    staged="$(mktemp)"
    SCRATCH+=("$staged")
    cp "$template" "$staged"
    if [[ -e $ROOT$CONFIG_DIR/mqtt_password ]]; then
        # The agent's topics are only for its broker user: log it in with the user made above.
        sed -i -e "s|^username = \"\"|username = \"$APP_USER\"|" \
            -e "s|^# password_file = \"$CONFIG_DIR/mqtt_password\"|password_file = \"$CONFIG_DIR/mqtt_password\"|" \
            "$staged"
        grep -q "^password_file = \"$CONFIG_DIR/mqtt_password\"" "$staged" ||
            say "WARNING: set mqtt.username and mqtt.password_file in $CONFIG_DIR/config.toml"
    fi
    create_once "$CONFIG_DIR/config.toml" 0640 "root:$APP_GROUP" cat "$staged"
    rm -f "$staged"
}

setup_schedule() {
    local unit
    for unit in "${UNITS[@]}"; do
        if install_file "$DEPLOY/systemd/$unit" "$UNIT_DIR/$unit" 0644 root:root; then
            UNITS_CHANGED=1
        fi
    done
    if [[ $USE_CRON -eq 1 ]]; then
        install_file "$DEPLOY/cron/mqtt-tokend" "$CRON_FILE" 0644 root:root || true
    fi
    local enable=(lofi-pi-token-manager.service)
    [[ $USE_CRON -eq 1 ]] || enable+=(lofi-pi-token-health.timer)
    if systemd_running; then
        [[ $UNITS_CHANGED -eq 0 ]] || systemctl daemon-reload
        systemctl enable --quiet "${enable[@]}"
    elif on_host; then
        say "systemd is not running here: start the agent yourself ($CLI run)"
    else
        say "would run: systemctl daemon-reload"
        say "would run: systemctl enable ${enable[*]}"
    fi
}

install_all() {
    ensure_user
    # 0751: consumers reach fernet.key by name, but cannot list the directory or read the rest.
    ensure_dir "$CONFIG_DIR" 0751 "root:$APP_GROUP"
    ensure_dir "$STATE_DIR" 0700 "$APP_USER:$APP_GROUP"
    ensure_dir "$PREFIX" 0755 root:root
    if [[ $WITH_VENV -eq 1 ]]; then
        setup_venv
    else
        say "skipped the virtual environment (--no-venv)"
    fi
    create_once "$CONFIG_DIR/fernet.key" 0440 "$APP_USER:$KEY_GROUP" generate_key
    install_file "$DEPLOY/bin/mqtt-tokend" "$WRAPPER" 0755 root:root || true
    setup_mosquitto
    setup_config
    setup_schedule

    cat <<EOF

Next steps:
  1. Set spotify.client_id in $CONFIG_DIR/config.toml (your app at developer.spotify.com;
     add http://127.0.0.1:8888/callback to its Redirect URIs).
  2. Authorize once (prints a URL to open on any device with a browser); $WRAPPER
     runs it as the user $APP_USER with $CONFIG_DIR/config.toml:
       sudo mqtt-tokend auth
  3. Start the agent and the health check:
       sudo systemctl start lofi-pi-token-manager.service lofi-pi-token-health.timer
  4. Give the player and Home Assistant their broker passwords
     (generated ones are in $MOSQUITTO_DIR/credentials), and add the player's user
     to the group $KEY_GROUP so it can read $CONFIG_DIR/fernet.key (and nothing else here):
       sudo usermod -aG $KEY_GROUP PLAYER_USER
EOF
}

remove() {
    local path=$ROOT$1
    if [[ -e $path || -L $path ]]; then
        rm -rf "$path"
        say "removed $1"
    fi
}

# The agent's retained messages and its Home Assistant device leave the broker, for every
# config in $CONFIG_DIR (one agent per Spotify account), once the agents are stopped (a
# running one would publish them again). With the system python3: the venv may be gone
# already (an --uninstall first, a --purge later). Returns 1 when something stayed.
forget_broker() {
    local forget=$DEPLOY/forget_broker.py config status=0
    if [[ -n ${MQTT_TOKEND_KEEP_RETAINED:-} ]]; then
        say "left the agent's retained messages on the broker (MQTT_TOKEND_KEEP_RETAINED)"
        return 0
    fi
    for config in "$ROOT$CONFIG_DIR"/*.toml; do
        [[ -f $config ]] || continue
        if ! on_host && [[ -z $BROKER_RESTART ]]; then
            say "would run: $PYTHON $forget ${config#"$ROOT"}"
            continue
        fi
        if ! "$PYTHON" "$forget" "$config"; then
            say "The agent of ${config#"$ROOT"} left its retained messages and Home Assistant" \
                "device on the broker (the reason is above). Start Mosquitto" \
                "(sudo systemctl start mosquitto), then run the same command again; or, to" \
                "leave them there: $(again MQTT_TOKEND_KEEP_RETAINED=1)"
            status=1
        fi
    done
    return "$status"
}

# This command line, to run again (with VAR=VALUE words before it, if given).
again() {
    local words=("$@" "$SELF")
    on_host && words=(sudo "${words[@]}")
    on_host || words+=(--root "$ROOT")
    [[ -z $BROKER_RESTART ]] || words+=(--broker-restart "'$BROKER_RESTART'")
    if [[ $PURGE -eq 1 ]]; then words+=(--purge); else words+=(--uninstall); fi
    printf '%s\n' "${words[*]}"
}

stop_agents() {
    if systemd_running; then
        systemctl disable --now --quiet lofi-pi-token-manager.service \
            lofi-pi-token-health.timer 2>/dev/null || true
        systemctl stop 'lofi-pi-token-manager@*.service' 2>/dev/null || true
    elif ! on_host; then
        say "would run: systemctl disable --now lofi-pi-token-manager.service" \
            "lofi-pi-token-health.timer 'lofi-pi-token-manager@*.service'"
    fi
}

restart_broker() {
    if [[ -n $BROKER_RESTART ]]; then
        bash -c "$BROKER_RESTART" || say "WARNING: Mosquitto did not restart ($BROKER_RESTART)"
    elif systemd_running; then
        systemctl try-restart mosquitto.service
    elif ! on_host; then
        say "would run: systemctl try-restart mosquitto.service"
    fi
}

purge() {
    remove "$CONFIG_DIR"
    remove "$STATE_DIR"
    if [[ -e $ROOT$MOSQUITTO_CONF || -e $ROOT$MOSQUITTO_DIR ]]; then
        "$PYTHON" "$DEPLOY/mosquitto/setup_broker.py" --root "$ROOT" --deploy "$DEPLOY" --remove
        remove "$MOSQUITTO_CONF"
        remove "$MOSQUITTO_DIR"
        say "removed the broker's mqtt-tokend users and ACL lines"
        restart_broker
    fi
    if on_host; then
        if id -u "$APP_USER" >/dev/null 2>&1; then userdel "$APP_USER"; fi
        if getent group "$APP_GROUP" >/dev/null; then groupdel "$APP_GROUP"; fi
        if getent group "$KEY_GROUP" >/dev/null; then groupdel "$KEY_GROUP"; fi
    else
        say "would run: userdel $APP_USER; groupdel $APP_GROUP; groupdel $KEY_GROUP (if present)"
    fi
    say "purged mqtt-tokend (the Spotify session is gone: a new install needs 'auth')"
}

uninstall() {
    local unit cleared=0
    stop_agents
    forget_broker || cleared=$?
    for unit in "${UNITS[@]}"; do
        remove "$UNIT_DIR/$unit"
    done
    for unit in "$ROOT$UNIT_DIR"/*.wants/lofi-pi-token-manager@*.service; do
        [[ -L $unit ]] && remove "${unit#"$ROOT"}"
    done
    remove "$CRON_FILE"
    remove "$WRAPPER"
    remove "$PREFIX"
    if systemd_running; then
        systemctl daemon-reload
    elif ! on_host; then
        say "would run: systemctl daemon-reload"
    fi

    if [[ $cleared -ne 0 ]]; then
        # The config and the broker user are what a later run logs in with to finish.
        say "kept $CONFIG_DIR, $STATE_DIR and the broker users until the broker is clear"
        exit 1
    fi
    if [[ $PURGE -eq 1 ]]; then
        purge
    else
        say "kept $CONFIG_DIR (config, key) and $STATE_DIR (the Spotify session);" \
            "--purge removes them"
    fi
}

case $ACTION in
    install) install_all ;;
    uninstall) uninstall ;;
esac
