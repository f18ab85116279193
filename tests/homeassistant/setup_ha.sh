#!/usr/bin/env bash
# A real Home Assistant for tests/homeassistant/test_real_ha.py (opt-in; needs PyPI once).
#
#   tests/homeassistant/setup_ha.sh [VENV] [VERSION]
#   MQTT_TOKEND_HA_VENV=/tmp/ha-venv python -m pytest tests/homeassistant
#
# VENV defaults to /tmp/ha-venv, VERSION to 2024.1.6 (Python 3.11). For 2025.4.4 use a
# Python 3.13: PYTHON=/root/.pyenv/versions/3.13.0/bin/python setup_ha.sh /tmp/ha-2025 2025.4.4
# The test runs `hass --skip-pip`, so this also installs the requirements of every integration
# the test's configuration loads (and of their dependencies). About a minute on a fast line.
set -euo pipefail

venv=${1:-/tmp/ha-venv}
version=${2:-2024.1.6}
python=${PYTHON:-python3.11}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "homeassistant==$version"

"$venv/bin/python" - <<'EOF' >"$venv/ha-requirements.txt"
import json
import pathlib

import homeassistant.bootstrap as bootstrap
import homeassistant.components as components

root = pathlib.Path(components.__path__[0])
todo = ["mqtt", "http", "file_upload", "command_line", "notify", "automation", "script",
        "mqtt_statestream", "logger", "system_log", "persistent_notification"]
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
EOF
if [ -s "$venv/ha-requirements.txt" ]; then
    "$venv/bin/python" -m pip install --quiet -r "$venv/ha-requirements.txt"
fi
"$venv/bin/hass" --version
echo "ready: MQTT_TOKEND_HA_VENV=$venv"
