"""Registers the fuzz profiles early enough for `--hypothesis-profile` (see profiles.py)."""

from tests.fuzz import profiles  # noqa: F401  (registering the profiles is the import's effect)
