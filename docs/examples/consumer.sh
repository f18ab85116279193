#!/usr/bin/env bash
# A consumer of mqtt-tokend in the shell, from the published contract alone (docs/consumers.md):
# mosquitto_sub and mosquitto_rr (mosquitto-clients), openssl and jq; no Python.
#
#   consumer.sh token      # print a valid access token
#   consumer.sh rejected   # report the current token as refused (a 401); print the new one
#   consumer.sh refresh    # ask for a refresh; print the reply's JSON
#
# Settings from the environment: MQTT_HOST (127.0.0.1), MQTT_PORT (1883), MQTT_USERNAME,
# MQTT_PASSWORD, TOKEND_BASE (lofi/spotify), TOKEND_KEY_FILE (/etc/mqtt-tokend/fernet.key).
# With mqtt-tokend installed, `mqtt-tokend get-token` does what `token` does here.
set -euo pipefail

BASE=${TOKEND_BASE:-lofi/spotify}
KEY_FILE=${TOKEND_KEY_FILE:-/etc/mqtt-tokend/fernet.key}
# --nodelay: without TCP_NODELAY a small packet can wait 40 ms for the peer's delayed ACK.
MQTT=(-h "${MQTT_HOST:-127.0.0.1}" -p "${MQTT_PORT:-1883}" -q 1 --nodelay)
if [ -n "${MQTT_USERNAME:-}" ]; then  # -P is visible in `ps` to local users for a moment
    MQTT+=(-u "$MQTT_USERNAME" -P "${MQTT_PASSWORD:-}")
fi

fail() { echo "consumer.sh: $*" >&2; exit 1; }
b64d() { printf '%s' "$1" | tr '_-' '/+' | base64 -d; }   # Fernet uses base64url
hex() { od -An -v -tx1 | tr -d ' \n'; }

# Fernet (version 0x80 | time 8 | IV 16 | ciphertext | HMAC-SHA256 32), by hand. No TTL: a
# retained token may be most of an hour old and still good; its own expires_at decides. Each
# line of the key file is a key (the first encrypts, all decrypt: key rotation).
decrypt() {
    local token=$1 key mac
    mac=$(b64d "$token" | tail -c 32 | hex)
    while read -r key; do
        case $key in "" | "#"*) continue ;; esac
        [ "$(b64d "$token" | head -c -32 | openssl dgst -sha256 -mac HMAC \
            -macopt "hexkey:$(b64d "$key" | head -c 16 | hex)" | awk '{print $NF}')" = "$mac" ] \
            || continue
        b64d "$token" | head -c -32 | tail -c +26 | openssl enc -d -aes-128-cbc \
            -K "$(b64d "$key" | tail -c 16 | hex)" -iv "$(b64d "$token" | head -c 25 | tail -c 16 | hex)"
        return 0
    done <"$KEY_FILE"
    fail "the token does not decrypt with any key in $KEY_FILE"
}

token() {  # the retained token object, when it is still good for 5 s
    local payload plain
    payload=$(mosquitto_sub "${MQTT[@]}" -t "$BASE/token" -C 1 -W 10) || fail "no token retained"
    plain=$(decrypt "$payload")
    jq -e --argjson now "$(date +%s)" '.expires_at - 5 > $now' <<<"$plain" >/dev/null \
        || fail "the retained token has expired; see $BASE/health"
    printf '%s\n' "$plain"
}

refresh() {  # $1: the request's JSON fields; a reply topic and Correlation Data of our own
    local transaction
    transaction=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')  # unique across all clients
    mosquitto_rr "${MQTT[@]}" -W 10 -t "$BASE/request/refresh" \
        -e "$BASE/response/refresh/$transaction" -D publish correlation-data "$transaction" \
        -m "$(jq -c --arg t "$transaction" '. + {transaction: $t}' <<<"$1")"
}

case ${1:-token} in
token)
    token | jq -r .access_token ;;
rejected)  # Spotify answered 401 to this token: tell the agent, then take the new one
    old=$(token | jq -r .access_token)
    sha=$(printf '%s' "$old" | sha256sum | cut -d' ' -f1)
    refresh "{\"reason\": \"rejected\", \"token_sha256\": \"$sha\"}" | jq .data.refreshed
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        new=$(token | jq -r .access_token)
        [ "$new" != "$old" ] && { echo "$new"; exit 0; }
        sleep 1
    done
    fail "no new token within 10 s" ;;
refresh)
    refresh '{}' ;;
*)
    fail "unknown mode ${1}: token, rejected or refresh" ;;
esac
