"""Fixtures the unit tests share: a key and a token store in the test's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TokenStore
from mqtt_tokend.contract.tokens import Tokens


@pytest.fixture
def cipher() -> TokenCipher:
    """A fresh key, named after the installed key file (errors name where the key came from)."""
    return TokenCipher([generate_key()], source="/etc/mqtt-tokend/fernet.key")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path, cipher: TokenCipher) -> TokenStore:
    """An empty store (the directory is made on the first write)."""
    return TokenStore(state_dir, cipher=cipher)


@pytest.fixture
def saved(store: TokenStore, tokens: Tokens) -> TokenStore:
    """The store holding the test module's `tokens`."""
    store.save(tokens)
    return store
