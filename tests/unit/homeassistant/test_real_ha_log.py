"""What the real-Home-Assistant test (tests/homeassistant) counts as a problem in Home Assistant's
log."""

from __future__ import annotations

import pytest

from tests.homeassistant.real_ha import log_problems

# ---- what the real-Home-Assistant test counts as a problem in Home Assistant's log ----------

DEPRECATED_2026_2 = (  # what Home Assistant 2026.2.3 logged 11 times for the old discovery
    "2026-11-30 19:19:06.489 WARNING (MainThread) [homeassistant.components.mqtt.entity] The "
    "configuration for entity sensor.lofi_pi_spotify_token_state uses the deprecated option "
    '`object_id` to set the default entity id. Replace the `"object_id": '
    '"lofi_pi_spotify_token_state"` option with `"default_entity_id": '
    '"sensor.lofi_pi_spotify_token_state"` in your published discovery configuration to fix '
    "this issue, or contact the maintainer of mqtt-tokend that published this config to fix "
    "this. This will stop working in Home Assistant Core 2026.4"
)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (DEPRECATED_2026_2, True),
        (
            "2026-01-01 00:00:00.000 ERROR (MainThread) [homeassistant.components.mqtt.discovery] "
            "Invalid config for 'sensor' from integration 'mqtt'",
            True,
        ),
        (
            "2026-01-01 00:00:00.000 INFO (MainThread) [homeassistant.components.mqtt] deprecated "
            "key in some other device's discovery",
            True,
        ),
        (
            "2026-01-01 00:00:00.000 WARNING (MainThread) [homeassistant.bootstrap] Skipping pip "
            "installation of required modules. This may cause issues",
            False,
        ),
        (
            "2026-01-01 00:00:00.000 INFO (MainThread) [homeassistant.components.mqtt.discovery] "
            "Found new component: sensor lofi_spotify token_state",
            False,
        ),
    ],
)
def test_the_real_home_assistant_test_fails_on_deprecations(line: str, problem: bool) -> None:
    assert bool(log_problems(line, version=(2026, 2))) is problem
