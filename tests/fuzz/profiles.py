"""Hypothesis settings for the fuzz tests: small and reproducible in CI, as deep as wanted locally.

By default each test runs a fixed, derandomized set of examples (the same on every run, no
example database), sized so that all of `tests/fuzz` takes well under 20 s. For a long hunt:

    MQTT_TOKEND_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz   # examples a test (or case)
    python -m pytest tests/fuzz --hypothesis-profile=fuzz-deep    # 2,000 examples a test

Both explore randomly (new examples on every run) and keep failing examples in a database
in the user's cache (`${XDG_CACHE_HOME:-~/.cache}/mqtt-tokend/fuzz-db`, beside the cached Home
Assistant; nothing in /tmp), so a failure found once is tried first the next time.
The profile option needs `tests/fuzz` on the command line: that is where it is registered.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

EXAMPLES_ENV = "MQTT_TOKEND_FUZZ_EXAMPLES"
CI_PROFILE = "fuzz-ci"
DEEP_PROFILE = "fuzz-deep"
DEEP_EXAMPLES = 2000
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
FUZZ_DB = CACHE / "mqtt-tokend" / "fuzz-db"

# Big generated payloads and file trees are the point here, not a slow strategy.
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

# No deadline: a per-example time limit is a timed test, and fails on a loaded CI machine.
settings.register_profile(
    CI_PROFILE,
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    DEEP_PROFILE,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(FUZZ_DB),
    max_examples=DEEP_EXAMPLES,
    deadline=None,
    suppress_health_check=_QUIET,
)


def _examples_from_env() -> int | None:
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{EXAMPLES_ENV} must be a positive whole number, got {raw!r}")
    return int(raw)


if _examples_from_env() is not None:
    settings.load_profile(DEEP_PROFILE)
elif settings.get_current_profile_name() in ("default", "ci"):  # "ci": Hypothesis saw $CI
    settings.load_profile(CI_PROFILE)  # unless --hypothesis-profile chose another


def budget(examples: int, *, io: bool = False) -> settings:
    """Settings for one test: `examples` in CI; more when asked; no deadline when it does I/O."""
    wanted = _examples_from_env()
    if wanted is None:
        deep = settings.get_current_profile_name() == DEEP_PROFILE
        wanted = settings.default.max_examples if deep else examples
    if io:
        return settings(max_examples=wanted, deadline=None)
    return settings(max_examples=wanted)
