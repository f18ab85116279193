"""Configuration: one TOML file read into frozen dataclasses, every problem reported at once.

The path comes from ``--config``, else ``$MQTT_TOKEND_CONFIG``, else
``/etc/mqtt-tokend/config.toml``. The loader collects every error, each starting with the
key's dotted name, and raises one :class:`~mqtt_tokend.errors.ConfigError` (the CLI exits 78).
Unknown keys and sections are errors. A secret comes from its environment variable, else its
``*_file`` key, else the inline value; no secret ever appears in a repr or an error message.
Relative paths resolve against the directory of the config file.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mqtt_tokend.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/mqtt-tokend/config.toml")
CONFIG_ENV = "MQTT_TOKEND_CONFIG"
CLIENT_SECRET_ENV = "MQTT_TOKEND_CLIENT_SECRET"
MQTT_PASSWORD_ENV = "MQTT_TOKEND_MQTT_PASSWORD"
SMTP_PASSWORD_ENV = "MQTT_TOKEND_SMTP_PASSWORD"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
EXAMPLE_CONFIG = "deploy/config.example.toml"
_REDACTED = "***"


@dataclass(frozen=True)
class SpotifyConfig:
    """The Spotify app: who we are to the Accounts service and where it lives."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    redirect_uri: str = "http://127.0.0.1:8888/callback"
    scopes: tuple[str, ...] = ("user-read-playback-state", "user-modify-playback-state")
    accounts_url: str = "https://accounts.spotify.com"
    api_url: str = "https://api.spotify.com"
    request_timeout: float = 10.0

    @property
    def confidential(self) -> bool:
        """True when a client secret is configured (otherwise a PKCE public client)."""
        return bool(self.client_secret)


@dataclass(frozen=True)
class MqttConfig:
    """The broker connection and the topic tree the agent owns."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    base_topic: str = "lofi/spotify"
    protocol: int = 5
    client_id: str = ""
    keepalive: int = 30


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent keeps its state and how eagerly it refreshes."""

    state_dir: Path = Path("/var/lib/mqtt-tokend")
    key_file: Path = Path("/etc/mqtt-tokend/fernet.key")
    check_interval: float = 300.0
    refresh_early_seconds: float = 600.0
    max_backoff: float = 300.0
    min_refresh_interval: float = 30.0
    log_level: str = "INFO"
    refresh_token_max_age_days: float = 180.0  # Spotify: six months after the authorization
    reauth_warn_days: tuple[float, ...] = (14.0, 3.0)


@dataclass(frozen=True)
class HomeAssistantConfig:
    """MQTT discovery for Home Assistant."""

    enabled: bool = True
    discovery_prefix: str = "homeassistant"


@dataclass(frozen=True)
class PlayerConfig:
    """The local Spotify Connect player (optional)."""

    zeroconf_url: str = ""  # e.g. http://127.0.0.1:4070/ (librespot, spotifyd): ?action=getInfo


@dataclass(frozen=True)
class AlertsConfig:
    """Optional e-mail for alerts from the redundant health check."""

    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, and the file it came from."""

    spotify: SpotifyConfig
    mqtt: MqttConfig
    agent: AgentConfig
    homeassistant: HomeAssistantConfig
    player: PlayerConfig = field(default_factory=PlayerConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    path: Path | None = None

    def redacted(self) -> dict[str, Any]:
        """Every value as plain data for diagnostics; secrets are "***" when set, "" when not."""
        out: dict[str, Any] = {}
        for part in fields(self):
            if part.name == "path":
                continue
            section = getattr(self, part.name)
            out[part.name] = {
                f.name: _plain(getattr(section, f.name), secret=not f.repr) for f in fields(section)
            }
        out["path"] = str(self.path) if self.path is not None else None
        return out


def _plain(value: Any, *, secret: bool) -> Any:
    """A value as JSON-ready data; a secret (a repr=False field) only says whether it is set."""
    if secret:
        return _REDACTED if value else ""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


_MISSING: Any = object()


def _show(value: Any) -> str:
    """A short repr of a (non-secret) value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expand(value: str, environ: Mapping[str, str]) -> Path:
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


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False


@dataclass
class _Section:
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
        got = type(value).__name__ if secret else _show(value)  # never echo a secret
        self.error(key, f"must be {expected}, got {got}")
        return default

    def string(self, key: str, default: str = "", *, secret: bool = False) -> str:
        return str(self.get(key, default, lambda v: isinstance(v, str), "a string", secret))

    def boolean(self, key: str, default: bool) -> bool:
        return bool(self.get(key, default, lambda v: isinstance(v, bool), "true or false"))

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        ok = lambda v: _is_int(v) and low <= v <= high  # noqa: E731
        return int(self.get(key, default, ok, f"an integer from {low} to {high}"))

    def number(self, key: str, default: float, minimum: float, *, strict: bool) -> float:
        def ok(v: Any) -> bool:
            if not _is_finite(v):
                return False
            return bool(v > minimum if strict else v >= minimum)

        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        return float(self.get(key, default, ok, f"a number {bound}"))

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        ok = lambda v: isinstance(v, list) and all(isinstance(i, str) and i.strip() for i in v)  # noqa: E731
        return tuple(i.strip() for i in self.get(key, default, ok, "a list of non-empty strings"))

    def numbers(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        def ok(v: Any) -> bool:
            return isinstance(v, list) and all(_is_finite(i) and i > 0 for i in v)

        return tuple(float(i) for i in self.get(key, default, ok, "a list of positive numbers"))

    def path(self, key: str, default: Path | None) -> Path | None:
        """A path, `~` expanded, relative to the config file; "" means unset for optional paths."""
        value = self.string(key)
        if "\0" in value:
            self.error(key, "must not contain a NUL character")
        elif value:
            try:
                path = _expand(value, self.environ)
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

    def topic(self, key: str, default: str) -> str:
        """A topic prefix: non-empty, no wildcards, no leading or trailing '/', no NUL."""
        value = self.string(key, default)
        problems = [
            "be empty" if not value else "",
            "contain the MQTT wildcards '+' or '#'" if "+" in value or "#" in value else "",
            "start or end with '/'" if value.startswith("/") or value.endswith("/") else "",
            "contain a NUL character" if "\0" in value else "",
        ]
        for problem in filter(None, problems):
            self.error(key, f"must not {problem}, got {_show(value)}")
        return value

    def finish(self) -> None:
        """Report every key of the table that no getter asked for."""
        for key in self.table:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                self.error(key, "unknown key" + (f" (did you mean {close[0]}?)" if close else ""))


def _redirect_uri(s: _Section, uri: str) -> None:
    """Check the OAuth redirect URI against what Spotify accepts."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        s.error("redirect_uri", f"not a valid URL: {_show(uri)}")
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
            f"or http://127.0.0.1:PORT/..., got {_show(uri)}"
        )
    elif parts.scheme not in ("http", "https") or not host:
        problem = (
            f"must be http://127.0.0.1:PORT/..., http://[::1]:PORT/... or https://..., got {uri!r}"
        )
    else:
        problem = "must not contain a '#fragment'" if parts.fragment else ""
    if problem:
        s.error("redirect_uri", problem)


def _http_url(s: _Section, key: str, url: str) -> str:
    """Check an http(s) base URL and return it without a trailing slash."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed port or IPv6 address
        valid = False
    if not valid:
        s.error(key, f"must be an http:// or https:// URL, got {_show(url)}")
    return url.rstrip("/")


def _spotify(s: _Section) -> SpotifyConfig:
    d = SpotifyConfig(client_id="")
    client_id = s.string("client_id").strip()
    if not client_id and isinstance(s.table.get("client_id", ""), str):
        s.error("client_id", "required")
    redirect_uri = s.string("redirect_uri", d.redirect_uri)
    if "redirect_uri" in s.table:
        _redirect_uri(s, redirect_uri)
    return SpotifyConfig(
        client_id=client_id,
        client_secret=s.secret("client_secret", CLIENT_SECRET_ENV),
        redirect_uri=redirect_uri,
        scopes=s.strings("scopes", d.scopes),
        accounts_url=_http_url(s, "accounts_url", s.string("accounts_url", d.accounts_url)),
        api_url=_http_url(s, "api_url", s.string("api_url", d.api_url)),
        request_timeout=s.number("request_timeout", d.request_timeout, 0, strict=True),
    )


def _mqtt(s: _Section) -> MqttConfig:
    d = MqttConfig()
    host = s.string("host", d.host).strip()
    if not host:
        s.error("host", "must not be empty")
    username = s.string("username", d.username)
    password = s.secret("password", MQTT_PASSWORD_ENV)
    if password and not username:
        s.error("password", "set, but mqtt.username is empty (MQTT sends no password without one)")
    tls = s.boolean("tls", d.tls)
    files = {key: s.path(key, None) for key in ("ca_file", "cert_file", "key_file")}
    for key, other in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if files[key] is None and files[other] is not None:
            s.error(key, f"required when mqtt.{other} is set (they go together)")
    for key, file in files.items():
        if tls and file is not None and not _is_file(file):
            s.error(key, f"no such file: {file}")
    is_version = lambda v: _is_int(v) and v in (3, 5)  # noqa: E731
    return MqttConfig(
        host=host,
        port=s.integer("port", d.port, 1, 65535),
        username=username,
        password=password,
        tls=tls,
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        base_topic=s.topic("base_topic", d.base_topic),
        protocol=s.get("protocol", d.protocol, is_version, "5 (MQTT 5) or 3 (MQTT 3.1.1)"),
        client_id=s.string("client_id", d.client_id),
        keepalive=s.integer("keepalive", d.keepalive, 1, 65535),
    )


def _agent(s: _Section) -> AgentConfig:
    d = AgentConfig()
    is_level = lambda v: isinstance(v, str) and v.upper() in LOG_LEVELS  # noqa: E731
    levels = "one of " + ", ".join(LOG_LEVELS)
    return AgentConfig(
        state_dir=s.path("state_dir", d.state_dir) or d.state_dir,
        key_file=s.path("key_file", d.key_file) or d.key_file,
        check_interval=s.number("check_interval", d.check_interval, 0, strict=True),
        refresh_early_seconds=s.number(
            "refresh_early_seconds", d.refresh_early_seconds, 0, strict=False
        ),
        max_backoff=s.number("max_backoff", d.max_backoff, 1, strict=False),
        min_refresh_interval=s.number(
            "min_refresh_interval", d.min_refresh_interval, 0, strict=False
        ),
        log_level=str(s.get("log_level", d.log_level, is_level, levels)).upper(),
        refresh_token_max_age_days=s.number(
            "refresh_token_max_age_days", d.refresh_token_max_age_days, 0, strict=True
        ),
        reauth_warn_days=s.numbers("reauth_warn_days", d.reauth_warn_days),
    )


def _homeassistant(s: _Section) -> HomeAssistantConfig:
    d = HomeAssistantConfig()
    return HomeAssistantConfig(
        enabled=s.boolean("enabled", d.enabled),
        discovery_prefix=s.topic("discovery_prefix", d.discovery_prefix),
    )


def _player(s: _Section) -> PlayerConfig:
    url = s.string("zeroconf_url")
    if url:
        url = _http_url(s, "zeroconf_url", url)
    return PlayerConfig(zeroconf_url=url)


def _alerts(s: _Section) -> AlertsConfig:
    d = AlertsConfig()
    to = s.get("email_to", [], lambda v: isinstance(v, str | list), "an address or a list")
    addresses = (to,) if isinstance(to, str) else tuple(to)
    for address in addresses:
        if not isinstance(address, str) or "@" not in address:
            s.error("email_to", f"not an e-mail address: {_show(address)}")
    return AlertsConfig(
        email_to=tuple(a for a in addresses if isinstance(a, str) and a),
        email_from=s.string("email_from"),
        smtp_host=s.string("smtp_host", d.smtp_host),
        smtp_port=s.integer("smtp_port", d.smtp_port, 1, 65535),
        smtp_username=s.string("smtp_username"),
        smtp_password=s.secret("smtp_password", SMTP_PASSWORD_ENV),
        smtp_starttls=s.boolean("smtp_starttls", d.smtp_starttls),
        smtp_timeout=s.number("smtp_timeout", d.smtp_timeout, 0, strict=True),
    )


_READERS = {
    "spotify": _spotify,
    "mqtt": _mqtt,
    "agent": _agent,
    "homeassistant": _homeassistant,
    "player": _player,
    "alerts": _alerts,
}


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    environ: Mapping[str, str],
    path: Path | None = None,
) -> Config:
    """Validate a parsed TOML document into a Config, or raise ConfigError listing every problem."""
    errors: list[str] = []
    for name, value in data.items():
        if name in _READERS:
            continue
        if isinstance(value, Mapping):
            errors.append(f"unknown section [{name}]")
        else:
            errors.append(
                f"{name}: unknown key at the top level; keys belong in a section: "
                "[spotify], [mqtt], [agent], [homeassistant], [player] or [alerts]"
            )
    sections: dict[str, Any] = {}
    for name, reader in _READERS.items():
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            errors.append(f"{name}: must be a table ([{name}]), got {_show(table)}")
            table = {}
        section = _Section(name, table, errors, base_dir, environ)
        sections[name] = reader(section)
        section.finish()
    if errors:
        raise ConfigError(errors)
    return Config(**sections, path=path)


def config_path(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The config file to read: `explicit`, else $MQTT_TOKEND_CONFIG, else the default."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return _expand(os.fspath(explicit), env)
    if env.get(CONFIG_ENV):
        return _expand(env[CONFIG_ENV], env)
    return DEFAULT_CONFIG_PATH


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate the configuration file; raise ConfigError naming every problem."""
    env = os.environ if environ is None else environ
    file = config_path(path, env).absolute()
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigError(
            f"config file {file} not found: pass --config PATH or set ${CONFIG_ENV}, "
            f"or copy {EXAMPLE_CONFIG} to {file} and edit it"
        ) from err
    except PermissionError as err:
        raise ConfigError(
            f"cannot read config file {file}: permission denied "
            "(run as the service user, or make the file readable by it)"
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {file}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {file} is not UTF-8 text") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {file} is not valid TOML: {err}") from err
    config = parse_config(data, base_dir=file.parent, environ=env, path=file)
    _refuse_exposed_secrets(file, data)
    return config


SECRET_KEYS = (("spotify", "client_secret"), ("mqtt", "password"), ("alerts", "smtp_password"))


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


def _refuse_exposed_secrets(file: Path, data: Mapping[str, Any]) -> None:
    """A secret in a file every user can read is no secret: say so, with the chmod that fixes it."""
    errors = []
    for section, key in SECRET_KEYS:
        table = data.get(section)
        if not isinstance(table, Mapping):
            continue
        if table.get(key) and _readable_by_others(file):
            errors.append(
                f"{section}.{key}: {file} holds this secret and every user can read it; "
                f"fix it with: chmod 640 {file} (or move it to {key}_file or the environment)"
            )
        secret_file = table.get(f"{key}_file")
        if isinstance(secret_file, str) and secret_file:
            path = _expand(secret_file, os.environ)
            path = path if path.is_absolute() else file.parent / path
            if _readable_by_others(path):
                errors.append(
                    f"{section}.{key}_file: every user can read {path}; "
                    f"fix it with: chmod 600 {path}"
                )
    if errors:
        raise ConfigError(errors)
