#!/usr/bin/env bash
# Sourced by scripts/demo and scripts/test: a virtual environment with the package, and Mosquitto.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MQTT_TOKEND_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    echo "[setup] installing $* (apt-get install -y $*)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

install_system_packages() {
    local missing=()
    if [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_pub >/dev/null 2>&1; then
        missing+=(mosquitto mosquitto-clients)
    fi
    if [ "${MQTT_TOKEND_DEV:-}" = 1 ] && ! command -v shellcheck >/dev/null 2>&1; then
        missing+=(shellcheck)  # the test suite lints the shipped shell scripts
    fi
    if [ "${MQTT_TOKEND_DEV:-}" = 1 ]; then  # the shell consumer example (docs/examples) runs
        command -v jq >/dev/null 2>&1 || missing+=(jq)
        command -v openssl >/dev/null 2>&1 || missing+=(openssl)
        # the installer's secret files are traced from their creation (tests/deploy)
        command -v strace >/dev/null 2>&1 || missing+=(strace)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

step() {
    echo "[setup] $*" >&2
}

make_venv() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "mqtt-tokend needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        step "creating the virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # The product alone for ./scripts/demo; the test extras (pytest, ruff, mypy, hypothesis...)
    # only for ./scripts/test (MQTT_TOKEND_DEV=1). Reinstall only when the package metadata
    # changed since the last install of that flavour; a test venv also serves the demo.
    local flavour=runtime spec="$ROOT"
    if [ "${MQTT_TOKEND_DEV:-}" = 1 ]; then
        flavour="test"
        spec="${ROOT}[test]"
    fi
    local want
    want=$(sha256sum <"$ROOT/pyproject.toml" | cut -d' ' -f1)
    local stamp_test="$VENV/.mqtt-tokend-installed-test"
    if [ "$flavour" = runtime ] && [ -f "$stamp_test" ] && [ "$(cat "$stamp_test")" = "$want" ]; then
        return 0
    fi
    local stamp="$VENV/.mqtt-tokend-installed-$flavour"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        step "installing mqtt-tokend ($flavour dependencies) into $VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2
        echo "$want" >"$stamp"
    fi
}

install_system_packages
make_venv
