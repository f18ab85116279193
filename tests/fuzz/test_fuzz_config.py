"""Fuzzing the configuration: any file gives a Config or one ConfigError listing every problem.

Documents are generated as data (known and unknown sections and keys, values of every TOML
type, plausible and absurd) and written with the small TOML writer below, or are plain text
or bytes. Every error names its key (or the file), and a secret never appears in one.
"""

from __future__ import annotations

import math
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mqtt_tokend.config import (
    CLIENT_SECRET_ENV,
    MQTT_PASSWORD_ENV,
    SMTP_PASSWORD_ENV,
    Config,
    load_config,
    parse_config,
)
from mqtt_tokend.errors import ConfigError
from tests.fuzz.profiles import budget

SECRET = "fuzz-s3cr3t-never-in-an-error"
SECRET_KEYS = {"spotify": "client_secret", "mqtt": "password", "alerts": "smtp_password"}
KEYS = {
    "spotify": [
        "client_id",
        "client_secret",
        "client_secret_file",
        "redirect_uri",
        "scopes",
        "accounts_url",
        "api_url",
        "request_timeout",
    ],
    "mqtt": [
        "host",
        "port",
        "username",
        "password",
        "password_file",
        "tls",
        "ca_file",
        "cert_file",
        "key_file",
        "base_topic",
        "protocol",
        "client_id",
        "keepalive",
    ],
    "agent": [
        "state_dir",
        "key_file",
        "check_interval",
        "refresh_early_seconds",
        "max_backoff",
        "min_refresh_interval",
        "log_level",
        "refresh_token_max_age_days",
        "reauth_warn_days",
    ],
    "homeassistant": ["enabled", "discovery_prefix"],
    "player": ["zeroconf_url"],
    "alerts": [
        "email_to",
        "email_from",
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_password",
        "smtp_password_file",
        "smtp_starttls",
        "smtp_timeout",
    ],
}
SECTIONS = list(KEYS)

# ---- a tiny TOML writer ------------------------------------------------------------------


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    pairs = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
    return "{" + ", ".join(pairs) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    """Top-level keys first (they must precede every table), then one table per section."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in doc.items() if not is_table(v)]
    for name, table in doc.items():
        if is_table(table):
            lines.append(f"[{toml_string(name)}]")
            lines.extend(f"{toml_string(k)} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def is_table(value: Any) -> bool:
    return isinstance(value, dict)


# ---- documents -----------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=20)
LONG_NAME = "p" * 300  # longer than a file name may be
PLAUSIBLE = [
    "",
    " ",
    "abc",
    "http://127.0.0.1:8888/callback",
    "http://localhost:8888/callback",
    "http://[::1]/callback",
    "http://example.com/cb",
    "https://accounts.spotify.com",
    "https://[zz]:99999/",
    "ftp://x",
    "lofi/spotify",
    "/lofi/",
    "lofi/+/#",
    "a\0b",
    "~",
    "~/state",
    "~no-such-user-here/x",
    "relative/dir",
    "/",
    LONG_NAME,
    "d/" * 2100,
    "secret.txt",
    "empty.txt",
    "latin1.txt",
    "a-directory",
    "missing.txt",
    "DEBUG",
    "verbose",
    "me@example.com",
]
PATHS = ["", "~", "relative/x", "/", LONG_NAME, "d/" * 2100, "secret.txt", "a-directory"]
PATH_KEYS = {"client_secret_file", "password_file", "smtp_password_file", "state_dir", "key_file"}
PATH_KEYS |= {"ca_file", "cert_file"}
BOOL_KEYS = {"tls", "enabled", "smtp_starttls"}
EDGE_NUMBERS = [0, -1, 1, 3, 5, 1883, 65535, 65536, 0.5, 1e308, 10**30, 10**400, -(10**400)]
EDGES = [
    *PLAUSIBLE,
    *EDGE_NUMBERS,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    [],
    [""],
    ["a", "b"],
    [1.0, 10**400],
    [math.nan],
    [-1],
    [14, 3],
]
scalars = st.one_of(
    st.sampled_from(PLAUSIBLE),
    text,
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
secret_values = st.sampled_from([SECRET, [SECRET], {"value": SECRET}, f" {SECRET} "])


def key_values(key: str) -> st.SearchStrategy[Any]:
    """An edge case for this kind of key, or any value at all."""
    edges = PATHS if key in PATH_KEYS else [True, False] if key in BOOL_KEYS else EDGES
    return st.sampled_from(edges) | values


def section(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Each known key perhaps; unknown keys; the section's secret in some shape, perhaps."""
    known = st.fixed_dictionaries({}, optional={k: key_values(k) for k in KEYS.get(name, [])})
    secret = {SECRET_KEYS[name]: secret_values} if name in SECRET_KEYS else {}
    secrets = st.fixed_dictionaries({}, optional=secret)
    unknown = st.dictionaries(text, values, max_size=2)
    return st.builds(
        lambda *parts: {k: v for part in parts for k, v in part.items()}, unknown, known, secrets
    )


SECTION_TABLES = {name: section(name) for name in SECTIONS}
# A known section is usually a table, sometimes absent, rarely something else.
SECTION_SHAPES = {
    name: st.one_of(table, table, table, st.none(), values)
    for name, table in SECTION_TABLES.items()
}
ABSENT = None


def assemble(known: dict[str, Any], unknown: dict[str, Any]) -> dict[str, Any]:
    doc = {name: value for name, value in known.items() if value is not ABSENT}
    return {**unknown, **doc}


documents = st.builds(
    assemble,
    st.fixed_dictionaries(SECTION_SHAPES),
    st.dictionaries(text, section("unknown") | values, max_size=2),
)


environs = st.fixed_dictionaries(
    {},
    optional={
        CLIENT_SECRET_ENV: st.just(SECRET),
        MQTT_PASSWORD_ENV: st.just(SECRET),
        SMTP_PASSWORD_ENV: st.just(SECRET),
        "HOME": st.sampled_from(["/home/fuzz", "", "relative"]),
    },
)


@contextmanager
def config_dir() -> Iterator[Path]:
    """A directory with the files that `*_file` keys may point at."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "secret.txt").write_text(SECRET + "\n")
        (root / "empty.txt").write_text("")
        (root / "latin1.txt").write_bytes(b"caf\xe9 " + SECRET.encode())
        (root / "a-directory").mkdir()
        yield root


# ---- the properties ----------------------------------------------------------------------


def check_error(err: ConfigError, doc: dict[str, Any], file: Path | None) -> None:
    """Non-empty errors, each naming a key (or the file), none showing the secret."""
    assert err.errors
    names = [*doc, *SECTIONS]
    for entry in err.errors:
        assert isinstance(entry, str)
        assert entry.strip()
        named = (file is not None and str(file) in entry) or any(
            entry.startswith((f"{name}.", f"{name}:", f"unknown section [{name}]"))
            for name in names
        )
        assert named, f"names no key: {entry!r}"
    assert SECRET not in str(err)
    assert all(SECRET not in entry for entry in err.errors)


def check_config(config: Config) -> None:
    assert isinstance(config, Config)
    assert SECRET not in repr(config)
    assert SECRET not in str(config.redacted())


@budget(120, io=True)
@given(doc=documents, environ=environs)
def test_any_toml_document_gives_a_config_or_one_error_naming_each_key(
    doc: dict[str, Any], environ: dict[str, str]
) -> None:
    document = toml_document(doc)
    with config_dir() as root:
        path = root / "config.toml"
        path.write_text(document, encoding="utf-8")
        try:
            config = load_config(path, environ=environ)
        except ConfigError as err:
            check_error(err, tomllib.loads(document), path)
        else:
            check_config(config)


@budget(100, io=True)
@given(doc=documents, environ=environs)
def test_parse_config_takes_any_parsed_document(
    doc: dict[str, Any], environ: dict[str, str]
) -> None:
    with config_dir() as root:
        try:
            config = parse_config(doc, base_dir=root, environ=environ)
        except ConfigError as err:
            check_error(err, doc, None)
        else:
            check_config(config)


@budget(100, io=True)
@given(
    content=st.binary(max_size=200)
    | text.map(str.encode)
    | documents.map(toml_document).map(lambda t: t.encode()[: len(t) // 2])
)
def test_any_bytes_give_a_config_or_an_error_naming_the_file(content: bytes) -> None:
    with config_dir() as root:
        path = root / "config.toml"
        path.write_bytes(content)
        try:
            config = load_config(path, environ={})
        except ConfigError as err:
            try:
                doc = tomllib.loads(content.decode("utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError):
                doc = {}
            check_error(err, doc, path)
        else:
            check_config(config)


paths = st.sampled_from(PATHS) | text | st.integers(250, 5000).map(lambda n: "q" * n)


@budget(100, io=True)
@given(
    spotify=st.fixed_dictionaries({"client_secret_file": paths}),
    mqtt=st.fixed_dictionaries(
        {
            "tls": st.just(True),
            "username": st.just("tokend"),
            "password_file": paths,
            "ca_file": paths,
            "cert_file": paths,
            "key_file": paths,
        }
    ),
    agent=st.fixed_dictionaries({"state_dir": paths, "key_file": paths}),
    alerts=st.fixed_dictionaries({"smtp_password_file": paths}),
)
def test_every_path_key_takes_any_path(
    spotify: dict[str, Any], mqtt: dict[str, Any], agent: dict[str, Any], alerts: dict[str, Any]
) -> None:
    doc = {"spotify": {"client_id": "fuzz"} | spotify, "mqtt": mqtt, "agent": agent}
    doc["alerts"] = alerts
    with config_dir() as root:
        try:
            config = parse_config(doc, base_dir=root, environ={})
        except ConfigError as err:
            check_error(err, doc, None)
        else:
            check_config(config)
