"""How each kind of configuration value is read from its TOML table and checked.

`config.py` says which key is which kind (field metadata); `Section` reads a table and
records every problem, starting with the key's dotted name, instead of raising.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_MISSING: Any = object()


def show(value: Any) -> str:
    """A short repr of a (non-secret) value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def expand(value: str, environ: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` (using ``$HOME`` from `environ` when it has one)."""
    if (value == "~" or value.startswith("~/")) and environ.get("HOME"):
        value = environ["HOME"] + value[1:]
    return Path(value).expanduser()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A number a float can hold: tomllib reads integers of any size, and NaN and inf."""
    if not (_is_int(value) or isinstance(value, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_file(path: Path) -> bool:
    """True when `path` is a regular file; False for anything else, or a path it cannot test."""
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False


@dataclass
class Section:
    """One table of the file: typed getters that record errors instead of raising."""

    name: str
    table: Mapping[str, Any]
    errors: list[str]
    base_dir: Path
    environ: Mapping[str, str]
    known: list[str] = field(default_factory=list)

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.name}.{key}: {message}")

    def get(
        self, key: str, default: Any, ok: Callable[[Any], bool], expected: str, secret: bool = False
    ) -> Any:
        """The value of `key`; `default` when it is absent, or wrong (and then say why)."""
        self.known.append(key)
        value = self.table.get(key, _MISSING)
        if value is _MISSING:
            return default
        if ok(value):
            return value
        got = type(value).__name__ if secret else show(value)  # never echo a secret
        self.error(key, f"must be {expected}, got {got}")
        return default

    def string(self, key: str, default: str = "", *, secret: bool = False) -> str:
        return str(self.get(key, default, lambda v: isinstance(v, str), "a string", secret))

    def path(self, key: str, default: Path | None) -> Path | None:
        """A path, `~` expanded, relative to the config file; "" means unset for optional paths."""
        value = self.string(key)
        if "\0" in value:
            self.error(key, "must not contain a NUL character")
        elif value:
            try:
                path = expand(value, self.environ)
            except RuntimeError:
                self.error(key, f"cannot expand the home directory in {value!r}")
            else:
                return path if path.is_absolute() else self.base_dir / path
        elif default is not None and self.table.get(key) == "":
            self.error(key, "must not be empty")
        return default

    def secret(self, key: str, env_name: str) -> str:
        """The secret from $`env_name`, else the `<key>_file` file, else the inline value."""
        inline = self.string(key, secret=True)
        file_key = f"{key}_file"
        file = self.path(file_key, None)
        if inline and file is not None:
            self.error(key, f"set either {key} or {file_key}, not both")
        if self.environ.get(env_name):
            return self.environ[env_name]
        if file is None:
            return inline
        try:
            value = file.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            self.error(file_key, f"no such file: {file}")
        except UnicodeDecodeError:
            self.error(file_key, f"{file} is not UTF-8 text")
        except OSError as err:
            self.error(file_key, f"cannot read {file}: {err.strerror or type(err).__name__}")
        else:
            if value:
                return value
            self.error(file_key, f"{file} is empty")
        return ""

    def read(self, spec: Field[Any]) -> Any:
        """The value of one field's key, checked as its `_setting` says."""
        key, rules = spec.name, spec.metadata
        default = "" if spec.default is MISSING else spec.default
        return KINDS[rules["kind"]](self, key, default, rules)

    def finish(self) -> None:
        """Report every key of the table that no getter asked for."""
        for key in self.table:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                self.error(key, "unknown key" + (f" (did you mean {close[0]}?)" if close else ""))


Rules = Mapping[str, Any]


def _string(s: Section, key: str, default: str, rules: Rules) -> str:
    value = s.string(key, default)
    value = value.strip() if rules.get("strip") else value
    if not value and rules.get("required") and isinstance(s.table.get(key, ""), str):
        s.error(key, "required")
    elif not value and rules.get("nonempty"):
        s.error(key, "must not be empty")
    return value


def _boolean(s: Section, key: str, default: bool, rules: Rules) -> bool:
    return bool(s.get(key, default, lambda v: isinstance(v, bool), "true or false"))


def _integer(s: Section, key: str, default: int, rules: Rules) -> int:
    low, high = rules["low"], rules["high"]
    ok = lambda v: _is_int(v) and low <= v <= high  # noqa: E731
    return int(s.get(key, default, ok, f"an integer from {low} to {high}"))


def _number(s: Section, key: str, default: float, rules: Rules) -> float:
    minimum, strict = rules["minimum"], rules.get("strict", False)

    def ok(v: Any) -> bool:
        return _is_finite(v) and bool(v > minimum if strict else v >= minimum)

    bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
    return float(s.get(key, default, ok, f"a number {bound}"))


def _choice(s: Section, key: str, default: Any, rules: Rules) -> Any:
    """One of `choices`, of their type (a bool is no int); strings in any case."""
    choices = rules["choices"]

    def fold(v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    ok = lambda v: type(v) is type(choices[0]) and fold(v) in choices  # noqa: E731
    return fold(s.get(key, default, ok, rules["expected"]))


def _strings(s: Section, key: str, default: tuple[str, ...], rules: Rules) -> tuple[str, ...]:
    ok = lambda v: isinstance(v, list) and all(isinstance(i, str) and i.strip() for i in v)  # noqa: E731
    return tuple(i.strip() for i in s.get(key, default, ok, "a list of non-empty strings"))


def _numbers(s: Section, key: str, default: tuple[float, ...], rules: Rules) -> tuple[float, ...]:
    ok = lambda v: isinstance(v, list) and all(_is_finite(i) and i > 0 for i in v)  # noqa: E731
    return tuple(float(i) for i in s.get(key, default, ok, "a list of positive numbers"))


def _addresses(s: Section, key: str, default: tuple[str, ...], rules: Rules) -> tuple[str, ...]:
    value = s.get(key, [], lambda v: isinstance(v, str | list), "an address or a list")
    addresses = (value,) if isinstance(value, str) else tuple(value)
    for address in addresses:
        if not isinstance(address, str) or "@" not in address:
            s.error(key, f"not an e-mail address: {show(address)}")
    return tuple(a for a in addresses if isinstance(a, str) and a)


def _topic(s: Section, key: str, default: str, rules: Rules) -> str:
    """A topic prefix: non-empty, no wildcards, no leading or trailing '/', no NUL."""
    value = s.string(key, default)
    problems = [
        "be empty" if not value else "",
        "contain the MQTT wildcards '+' or '#'" if "+" in value or "#" in value else "",
        "start or end with '/'" if value.startswith("/") or value.endswith("/") else "",
        "contain a NUL character" if "\0" in value else "",
    ]
    for problem in filter(None, problems):
        s.error(key, f"must not {problem}, got {show(value)}")
    return value


def _url(s: Section, key: str, default: str, rules: Rules) -> str:
    url = s.string(key, default)
    return _http_url(s, key, url) if url or not rules.get("optional") else url


def _redirect(s: Section, key: str, default: str, rules: Rules) -> str:
    uri = s.string(key, default)
    if key in s.table:
        _redirect_uri(s, uri)
    return uri


def _redirect_uri(s: Section, uri: str) -> None:
    """Check the OAuth redirect URI against what Spotify accepts."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        s.error("redirect_uri", f"not a valid URL: {show(uri)}")
        return
    host = (parts.hostname or "").lower()
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    if host == "localhost":
        problem = f"Spotify rejects 'localhost'; use http://127.0.0.1:{port or 8888}{path} instead"
    elif parts.scheme == "http" and host in ("127.0.0.1", "::1") and not port:
        problem = f"a loopback URI needs a port, like http://{parts.netloc}:8888{path}"
    elif parts.scheme == "http" and host and host not in ("127.0.0.1", "::1"):
        problem = (
            "insecure: plain http is only allowed on 127.0.0.1 or [::1]; use https://... "
            f"or http://127.0.0.1:PORT/..., got {show(uri)}"
        )
    elif parts.scheme not in ("http", "https") or not host:
        problem = (
            f"must be http://127.0.0.1:PORT/..., http://[::1]:PORT/... or https://..., got {uri!r}"
        )
    else:
        problem = "must not contain a '#fragment'" if parts.fragment else ""
    if problem:
        s.error("redirect_uri", problem)


def _http_url(s: Section, key: str, url: str) -> str:
    """Check an http(s) base URL and return it without a trailing slash."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed port or IPv6 address
        valid = False
    if not valid:
        s.error(key, f"must be an http:// or https:// URL, got {show(url)}")
    return url.rstrip("/")


KINDS: dict[str, Callable[[Section, str, Any, Rules], Any]] = {
    "string": _string,
    "boolean": _boolean,
    "integer": _integer,
    "number": _number,
    "choice": _choice,
    "strings": _strings,
    "numbers": _numbers,
    "addresses": _addresses,
    "topic": _topic,
    "url": _url,
    "redirect_uri": _redirect,
    "path": lambda s, key, default, _rules: s.path(key, default) or default,
    "secret": lambda s, key, _default, rules: s.secret(key, rules["env"]),
}
