#!/usr/bin/env bash
# A real Home Assistant for tests/homeassistant/test_real_ha.py, cached outside the repository.
#
#   tests/homeassistant/setup_ha.sh [VENV] [VERSION]     # prints the venv path on its last line
#   MQTT_TOKEND_HA_VENV=$(tests/homeassistant/setup_ha.sh | tail -n1) python -m pytest tests/homeassistant
#
# VERSION defaults to 2026.2.3: the newest release a Python 3.13.0 can run. Home Assistant
# 2025.5 and later ask for Python >= 3.13.2 and 2026.3 and later for 3.14; 2026.2 runs on
# 3.13.0 once its version gate is relaxed, which this script does in the test venv only
# (pip's --ignore-requires-python, and REQUIRED_PYTHON_VER in homeassistant/const.py).
# VENV defaults to ${XDG_CACHE_HOME:-~/.cache}/mqtt-tokend/ha-VERSION. A venv holding the stamp
# `.mqtt-tokend-complete` is reused as it is (seconds); anything else is rebuilt from scratch
# (about 8 minutes on 2 cores, needs PyPI). PYTHON picks the interpreter (default: the
# newest python3.13/3.14 found on PATH or in pyenv). For 2024.1.6: PYTHON=python3.11.
# The test runs `hass --skip-pip`, so this also installs the requirements of every integration
# the test's configuration loads (and of their dependencies).
set -euo pipefail

version=${2:-${MQTT_TOKEND_HA_VERSION:-2026.2.3}}
venv=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-tokend/ha-$version}
stamp="$venv/.mqtt-tokend-complete"

complete() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "homeassistant==$version" ] && [ -x "$venv/bin/hass" ]
}
if complete; then
    echo "cached: homeassistant $version in $venv" >&2
    echo "$venv"
    exit 0
fi
# One install at a time (two CI jobs on one machine); the second then finds the first's.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if complete; then
    echo "cached: homeassistant $version in $venv" >&2
    echo "$venv"
    exit 0
fi
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
    echo "setup_ha.sh: $venv exists and is not a virtual environment; not touching it" >&2
    exit 1
fi

find_python() {
    local candidate
    for candidate in python3.14 python3.13 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.14*/bin/python \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python; do
        # A pyenv shim is on PATH even where it cannot run: ask the interpreter itself.
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
            "$candidate" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}
python=${PYTHON:-$(find_python || true)}
if [ -z "$python" ]; then
    echo "setup_ha.sh: no Python 3.13 or newer found; set PYTHON=/path/to/python3.13" >&2
    exit 1
fi

echo "installing homeassistant $version with $python into $venv (a few minutes)" >&2
rm -rf "$venv"  # an unfinished install (no stamp): start over
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --ignore-requires-python)
"${pip[@]}" --upgrade pip
"${pip[@]}" "homeassistant==$version"

# Relax the version gate of the test venv's Home Assistant to the interpreter it runs on.
"$venv/bin/python" - <<'PY'
import pathlib
import re
import sys

import homeassistant

const = pathlib.Path(homeassistant.__file__).parent / "const.py"
text = const.read_text()
here = f"REQUIRED_PYTHON_VER: Final[tuple[int, int, int]] = {tuple(sys.version_info[:3])}"
relaxed, count = re.subn(r"^REQUIRED_PYTHON_VER\b.*$", here, text, count=1, flags=re.M)
if count and tuple(sys.version_info[:3]) < eval(  # noqa: S307 - our own pip install
    re.search(r"^REQUIRED_PYTHON_VER\b[^=]*=\s*(.*)$", text, re.M).group(1)
):
    const.write_text(relaxed)
    print(f"relaxed REQUIRED_PYTHON_VER in {const} to {sys.version_info[:3]}", file=sys.stderr)
PY

"$venv/bin/python" - <<'PY' >"$venv/ha-requirements.txt"
import json
import pathlib

import homeassistant.bootstrap as bootstrap
import homeassistant.components as components

root = pathlib.Path(components.__path__[0])
todo = ["mqtt", "http", "file_upload", "command_line", "notify", "automation", "script",
        "mqtt_statestream", "logger", "system_log", "persistent_notification", "webhook",
        "binary_sensor", "button", "sensor", "text", "event", "template"]
# Since 2024.x some integrations always load (2025.4 will not start without `frontend`).
todo += sorted(getattr(bootstrap, "DEFAULT_INTEGRATIONS", ()))
seen, requirements = set(), set()
while todo:
    domain = todo.pop()
    if domain in seen or not (root / domain / "manifest.json").is_file():
        continue
    seen.add(domain)
    manifest = json.loads((root / domain / "manifest.json").read_text())
    requirements.update(manifest.get("requirements", []))
    todo.extend(manifest.get("dependencies", []))
print("\n".join(sorted(requirements)))
PY
if [ -s "$venv/ha-requirements.txt" ]; then
    "${pip[@]}" -r "$venv/ha-requirements.txt"
fi
"$venv/bin/hass" --version >&2
echo "homeassistant==$version" >"$stamp"
echo "ready: MQTT_TOKEND_HA_VENV=$venv" >&2
echo "$venv"
