"""A scratch state directory for the fuzzers, and the checks that nothing in it was lost."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mqtt_tokend.adapters.crypto import TokenCipher, generate_key
from mqtt_tokend.adapters.store import TOKENS_FILE, TokenStore

T0 = 1_800_000_000.0
CIPHER = TokenCipher([generate_key()], source="/etc/mqtt-tokend/fernet.key")
STRANGER = TokenCipher([generate_key()])
DROP = object()  # a field removed from a record
IS_DIR = b"<a directory>"  # the file's name is taken by a directory (holding one file)


# ---- the directory -----------------------------------------------------------------------


@contextmanager
def state_dir() -> Iterator[tuple[Path, TokenStore]]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "state"
        directory.mkdir(mode=0o700)
        yield directory, TokenStore(directory, cipher=CIPHER)


def put(directory: Path, name: str, data: bytes | None) -> None:
    path = directory / name
    if data is None:
        return
    if data == IS_DIR:
        path.mkdir()
        (path / "inside").write_bytes(b"kept with its directory")
        return
    path.write_bytes(data)


def listing(directory: Path) -> dict[str, bytes]:
    """Every file and directory under `directory`, with its content."""
    return {
        str(p.relative_to(directory)): IS_DIR if p.is_dir() else p.read_bytes()
        for p in sorted(directory.rglob("*"))
    }


def nothing_lost(before: dict[str, bytes], after: dict[str, bytes], *, rewritten: set[str]) -> None:
    """No name gone; every content still somewhere (only `rewritten` may have new content).

    A directory where the token file belongs is moved aside whole: its insides change names.
    """
    gone = {name for name in set(before) - set(after) if not name.startswith(f"{TOKENS_FILE}/")}
    assert not gone, f"deleted: {gone}"
    contents = list(after.values())
    for name, content in before.items():
        if name not in rewritten:
            assert content in contents, f"the content of {name} is gone"
    assert not [n for n in after if n.endswith(".tmp")], "a temporary file was left behind"


def names_file(err: Exception, *paths: Path) -> None:
    message = str(err)
    assert message.strip()
    assert any(str(path) in message for path in paths), message
