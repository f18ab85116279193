#!/usr/bin/env bash
# The npm packages of the Node consumer example (docs/examples/package-lock.json), installed
# with `npm ci` into a cache outside the checkout, ~/.cache/mqtt-tokend/npm-<hash of the lock>,
# once per lock file. Prints the node_modules directory on its last line. Needs node and npm
# (Debian: apt-get install nodejs npm); .ci/run installs them when they are missing.
set -euo pipefail
EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../docs/examples" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node and npm are needed for the Node example: sudo apt-get install -y nodejs npm" >&2
    exit 1
fi
lock_hash=$(sha256sum <"$EXAMPLES/package-lock.json" | cut -c1-16)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-tokend/npm-$lock_hash
if [ ! -f "$CACHE/.installed" ]; then
    echo "[setup] installing the Node example's npm packages into $CACHE (npm ci)" >&2
    rm -rf "$CACHE.partial"
    mkdir -p "$CACHE.partial"
    cp "$EXAMPLES/package.json" "$EXAMPLES/package-lock.json" "$CACHE.partial/"
    (cd "$CACHE.partial" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    touch "$CACHE.partial/.installed"
    rm -rf "$CACHE"
    mv "$CACHE.partial" "$CACHE"
fi
echo "$CACHE/node_modules"
