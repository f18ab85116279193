#!/usr/bin/env bash
# The redundant token health check for cron (systemd systems use lofi-pi-token-health.timer):
# runs `mqtt-tokend health-check`, which judges the agent from the broker (or its status file),
# appends to token_health.log, writes the notice, publishes an alert and sends the optional
# e-mail. Prints one line, OK/WARNING/CRITICAL/UNKNOWN, and exits with its code: 0, 1, 2, 3
# (78 for a configuration error). Extra arguments go to health-check, e.g. --timeout 20.
#
#   */30 * * * * mqtt-tokend /path/to/deploy/check_token_health.sh 2>&1 | logger -t mqtt-tokend-health
#
# Run it as the agent's user (mqtt-tokend): another user still gets the verdict, the alert and
# the e-mail, but cannot write the log, the notice or the record that limits repeated alerts.
#
# Environment: MQTT_TOKEND_CONFIG (default /etc/mqtt-tokend/config.toml); MQTT_TOKEND_BIN to
# use another mqtt-tokend than the installer's venv or the one on PATH.
set -euo pipefail

readonly VENV_BIN=/opt/mqtt-tokend/venv/bin/mqtt-tokend
readonly CONFIG="${MQTT_TOKEND_CONFIG:-/etc/mqtt-tokend/config.toml}"

if [[ -n "${MQTT_TOKEND_BIN:-}" ]]; then
    bin="$MQTT_TOKEND_BIN"
elif [[ -x "$VENV_BIN" ]]; then
    bin="$VENV_BIN"
elif bin="$(command -v mqtt-tokend)"; then
    :
else
    echo "UNKNOWN: mqtt-tokend not found in $VENV_BIN or on PATH ($PATH)"
    exit 3
fi

exec "$bin" --config "$CONFIG" health-check "$@"
