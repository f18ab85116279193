"""Configuration: one TOML file read into frozen dataclasses, every problem reported at once.

The path comes from ``--config``, else ``$MQTT_TOKEND_CONFIG``, else
``/etc/mqtt-tokend/config.toml``. The loader collects every error, each starting with the
key's dotted name, and raises one :class:`~mqtt_tokend.errors.ConfigError` (the CLI exits 78).
Unknown keys and sections are errors. A secret comes from its environment variable, else its
``*_file`` key, else the inline value; no secret ever appears in a repr or an error message.
Relative paths resolve against the directory of the config file.

The dataclasses below are the schema: each field's default is the default of its key, and
its metadata (`_setting`) says what the file may hold there; one loader reads every section.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from mqtt_tokend.config_checks import Section, expand, is_file, show
from mqtt_tokend.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/mqtt-tokend/config.toml")
CONFIG_ENV = "MQTT_TOKEND_CONFIG"
CLIENT_SECRET_ENV = "MQTT_TOKEND_CLIENT_SECRET"
MQTT_PASSWORD_ENV = "MQTT_TOKEND_MQTT_PASSWORD"
SMTP_PASSWORD_ENV = "MQTT_TOKEND_SMTP_PASSWORD"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
EXAMPLE_CONFIG = "deploy/config.example.toml"
# The project's README: Home Assistant's default "Visit" link for the device.
README_URL = "https://github.com/mqtt-tokend/mqtt-tokend#readme"
_REDACTED = "***"


def _setting(default: Any = MISSING, kind: str = "string", **rules: Any) -> Any:
    """A field whose default is the key's default and whose `kind` and `rules` the loader checks."""
    return field(default=default, repr=kind != "secret", metadata={"kind": kind, **rules})


_PORT = {"low": 1, "high": 65535}


@dataclass(frozen=True)
class SpotifyConfig:
    """The Spotify app: who we are to the Accounts service and where it lives."""

    client_id: str = _setting(strip=True, required=True)
    client_secret: str = _setting("", "secret", env=CLIENT_SECRET_ENV)
    redirect_uri: str = _setting("http://127.0.0.1:8888/callback", "redirect_uri")
    scopes: tuple[str, ...] = _setting(
        ("user-read-playback-state", "user-modify-playback-state"), "strings"
    )
    accounts_url: str = _setting("https://accounts.spotify.com", "url")
    api_url: str = _setting("https://api.spotify.com", "url")
    request_timeout: float = _setting(10.0, "number", minimum=0, strict=True)

    @property
    def confidential(self) -> bool:
        """True when a client secret is configured (otherwise a PKCE public client)."""
        return bool(self.client_secret)


@dataclass(frozen=True)
class MqttConfig:
    """The broker connection and the topic tree the agent owns."""

    host: str = _setting("127.0.0.1", strip=True, nonempty=True)
    port: int = _setting(1883, "integer", **_PORT)
    username: str = _setting("")
    password: str = _setting("", "secret", env=MQTT_PASSWORD_ENV)
    tls: bool = _setting(False, "boolean")
    ca_file: Path | None = _setting(None, "path")  # noqa: RUF009 (a field)
    cert_file: Path | None = _setting(None, "path")  # noqa: RUF009 (a field)
    key_file: Path | None = _setting(None, "path")  # noqa: RUF009 (a field)
    base_topic: str = _setting("lofi/spotify", "topic")
    protocol: int = _setting(5, "choice", choices=(5, 3), expected="5 (MQTT 5) or 3 (MQTT 3.1.1)")
    client_id: str = _setting("")
    keepalive: int = _setting(30, "integer", **_PORT)


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent keeps its state and how eagerly it refreshes."""

    state_dir: Path = _setting(Path("/var/lib/mqtt-tokend"), "path")  # noqa: RUF009 (a field)
    key_file: Path = _setting(Path("/etc/mqtt-tokend/fernet.key"), "path")  # noqa: RUF009 (a field)
    check_interval: float = _setting(300.0, "number", minimum=0, strict=True)
    refresh_early_seconds: float = _setting(600.0, "number", minimum=0)
    max_backoff: float = _setting(300.0, "number", minimum=1)
    min_refresh_interval: float = _setting(30.0, "number", minimum=0)
    log_level: str = _setting(
        "INFO", "choice", choices=LOG_LEVELS, expected="one of " + ", ".join(LOG_LEVELS)
    )
    # Spotify ends a login six months after the authorization.
    refresh_token_max_age_days: float = _setting(180.0, "number", minimum=0, strict=True)
    reauth_warn_days: tuple[float, ...] = _setting((14.0, 3.0), "numbers")


@dataclass(frozen=True)
class HomeAssistantConfig:
    """MQTT discovery for Home Assistant."""

    enabled: bool = _setting(True, "boolean")
    discovery_prefix: str = _setting("homeassistant", "topic")
    # The device's "Visit" link in Home Assistant; "" leaves it out.
    configuration_url: str = _setting(README_URL, "url", optional=True)


@dataclass(frozen=True)
class PlayerConfig:
    """The local Spotify Connect player (optional)."""

    # e.g. http://127.0.0.1:4070/ (librespot, spotifyd): ?action=getInfo
    zeroconf_url: str = _setting("", "url", optional=True)


@dataclass(frozen=True)
class AlertsConfig:
    """Optional e-mail for alerts from the redundant health check."""

    email_to: tuple[str, ...] = _setting((), "addresses")
    email_from: str = _setting("")
    smtp_host: str = _setting("localhost")
    smtp_port: int = _setting(25, "integer", **_PORT)
    smtp_username: str = _setting("")
    smtp_password: str = _setting("", "secret", env=SMTP_PASSWORD_ENV)
    smtp_starttls: bool = _setting(False, "boolean")
    smtp_timeout: float = _setting(10.0, "number", minimum=0, strict=True)


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


def _check_mqtt(s: Section, values: dict[str, Any]) -> None:
    """What no single key says: a password needs a user; TLS files go in pairs and exist."""
    if values["password"] and not values["username"]:
        s.error("password", "set, but mqtt.username is empty (MQTT sends no password without one)")
    for key, other in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if values[key] is None and values[other] is not None:
            s.error(key, f"required when mqtt.{other} is set (they go together)")
    for key in ("ca_file", "cert_file", "key_file"):
        if values["tls"] and values[key] is not None and not is_file(values[key]):
            s.error(key, f"no such file: {values[key]}")


_SECTIONS: dict[str, type[Any]] = {
    "spotify": SpotifyConfig,
    "mqtt": MqttConfig,
    "agent": AgentConfig,
    "homeassistant": HomeAssistantConfig,
    "player": PlayerConfig,
    "alerts": AlertsConfig,
}
_CHECKS: dict[str, Callable[[Section, dict[str, Any]], None]] = {"mqtt": _check_mqtt}


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
        if name in _SECTIONS:
            continue
        if isinstance(value, Mapping):
            errors.append(f"unknown section [{name}]")
        else:
            errors.append(
                f"{name}: unknown key at the top level; keys belong in a section: "
                "[spotify], [mqtt], [agent], [homeassistant], [player] or [alerts]"
            )
    sections: dict[str, Any] = {}
    for name, schema in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            errors.append(f"{name}: must be a table ([{name}]), got {show(table)}")
            table = {}
        section = Section(name, table, errors, base_dir, environ)
        values = {spec.name: section.read(spec) for spec in fields(schema)}
        if name in _CHECKS:
            _CHECKS[name](section, values)
        sections[name] = schema(**values)
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
        return expand(os.fspath(explicit), env)
    if env.get(CONFIG_ENV):
        return expand(env[CONFIG_ENV], env)
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
    _refuse_exposed_secrets(file, data, env)
    return config


SECRET_KEYS = tuple(
    (name, spec.name)
    for name, schema in _SECTIONS.items()
    for spec in fields(schema)
    if spec.metadata.get("kind") == "secret"
)


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


def _refuse_exposed_secrets(
    file: Path, data: Mapping[str, Any], environ: Mapping[str, str]
) -> None:
    """A secret in a file every user can read is no secret: say so, with the chmod that fixes it."""
    errors = []
    for section, key in SECRET_KEYS:
        table = data.get(section)
        if not isinstance(table, Mapping):
            continue
        if table.get(key) and _readable_by_others(file):
            errors.append(
                f"{section}.{key}: {file} holds this secret and every user can read it; fix "
                f"it with: sudo chmod o-rwx {file} (or move it to {key}_file or the environment)"
            )
        secret_file = table.get(f"{key}_file")
        if isinstance(secret_file, str) and secret_file:
            path = expand(secret_file, environ)
            path = path if path.is_absolute() else file.parent / path
            if _readable_by_others(path):
                errors.append(
                    f"{section}.{key}_file: every user can read {path}; "
                    f"fix it with: chmod 600 {path}"
                )
    if errors:
        raise ConfigError(errors)
