"""Broker credentials and TLS: a Mosquitto with a password file and a TLS listener.

The broker has three listeners: `port` (anonymous, for the tests' own observers), `auth_port`
(password file) and `tls_port` (password file and TLS with a test CA made here).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mqtt_tokend.config import load_config
from mqtt_tokend.consumer import TokenConsumer
from mqtt_tokend.contract.topics import Topics
from mqtt_tokend.dev.devbroker import PrivateMosquitto, free_port
from mqtt_tokend.dev.emulator import SpotifyEmulator
from tests.integration.conftest import CLI, AgentProcess, cli, toml_value
from tests.integration.helpers import healthy, me_status
from tests.integration.watch import Watcher, wait_until

pytestmark = pytest.mark.integration

USER = "tokend"
PASSWORD = "correct horse battery"


class TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    def __init__(self, directory: Path, name: str = "ca") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mqtt-tokend test {name}")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca = directory / f"{name}.pem"
        self.cert = directory / f"{name}-server.pem"
        self.key = directory / f"{name}-server.key"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def set_password(password_file: Path, user: str, password: str) -> None:
    """What an admin does: `mosquitto_passwd -b` (creates the file if needed)."""
    create = [] if password_file.exists() else ["-c"]
    subprocess.run(
        ["mosquitto_passwd", *create, "-b", str(password_file), user, password],
        check=True,
        capture_output=True,
        timeout=10,
    )


class SecureMosquitto(PrivateMosquitto):
    """A private Mosquitto with an anonymous, a password and a TLS + password listener."""

    def __init__(self, workdir: Path, tls: TlsFiles) -> None:
        super().__init__(workdir)
        self.tls = tls
        self.auth_port = free_port()
        self.tls_port = free_port()
        self.password_file = workdir / "passwd"
        workdir.mkdir(parents=True, exist_ok=True)
        set_password(self.password_file, USER, PASSWORD)

    def write_config(self) -> Path:
        """per_listener_settings must come before every security setting."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            "per_listener_settings true",
            # As root, Mosquitto drops to its own user before reading the password file, which
            # then cannot enter pytest's private tmp_path: stay the user who runs the tests.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "set_tcp_nodelay true",
            "persistence false",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"listener {self.auth_port} {self.host}",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"listener {self.tls_port} {self.host}",
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"cafile {self.tls.ca}",
            f"certfile {self.tls.cert}",
            f"keyfile {self.tls.key}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return TlsFiles(tmp_path / "tls")


@pytest.fixture
def broker(tmp_path: Path, tls_files: TlsFiles) -> Iterator[SecureMosquitto]:
    with SecureMosquitto(tmp_path / "broker", tls_files) as mosquitto:
        yield mosquitto  # type: ignore[misc]


def with_mqtt(config: Path, name: str, **changes: object) -> Path:
    """A copy of the config with [mqtt] keys changed (None removes a key)."""
    out: list[str] = []
    section = ""
    for line in config.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()
            out.append(line)
            if section == "[mqtt]":
                out += [f"{k} = {toml_value(v)}" for k, v in changes.items() if v is not None]
            continue
        key = line.split("=", 1)[0].strip()
        if section == "[mqtt]" and key in changes:
            continue
        out.append(line)
    variant = config.with_name(f"config-{name}.toml")
    variant.write_text("\n".join(out) + "\n")
    variant.chmod(0o600)
    return variant


def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def mqtt_options(
    request: pytest.FixtureRequest, broker: SecureMosquitto, tmp_path: Path
) -> dict[str, object]:
    """TLS and a password file by default; a test parametrizes `wrong_password` otherwise."""
    if getattr(request, "param", None) == "wrong-password":
        return {"port": broker.auth_port, "username": USER, "password": "not the password"}
    return {
        "port": broker.tls_port,
        "username": USER,
        "password_file": str(password_file(tmp_path)),
        "tls": True,
        "ca_file": str(broker.tls.ca),
    }


def test_the_agent_and_every_client_use_tls_and_credentials(
    agent: AgentProcess,
    watcher: Watcher,
    broker: SecureMosquitto,
    base_topic: str,
    emulator: SpotifyEmulator,
    tmp_path: Path,
) -> None:
    topics = Topics(base_topic)
    watcher.wait_for(topics.health, healthy)  # the agent got in over TLS with password_file
    got = cli(agent.config, "get-token")
    assert got.returncode == 0, got.stderr
    assert me_status(emulator, got.stdout.strip()) == 200

    from_env = with_mqtt(agent.config, "env", password_file=None)
    result = subprocess.run(
        [*CLI, "--config", str(from_env), "get-token"],
        env={**os.environ, "MQTT_TOKEND_MQTT_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == got.stdout

    inline_v3 = with_mqtt(
        agent.config,
        "plain",
        port=broker.auth_port,
        tls=False,
        ca_file=None,
        password_file=None,
        password=PASSWORD,
        protocol=3,
    )
    status = cli(inline_v3, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"state": "ok"' in status.stdout

    with TokenConsumer(load_config(agent.config)) as consumer:
        assert consumer.token(timeout=10).access_token == got.stdout.strip()


def test_a_server_certificate_from_another_ca_is_refused(
    agent: AgentProcess, watcher: Watcher, base_topic: str, tmp_path: Path
) -> None:
    watcher.wait_for(Topics(base_topic).health, healthy)
    stranger = TlsFiles(tmp_path / "other", name="stranger")
    result = cli(with_mqtt(agent.config, "stranger", ca_file=str(stranger.ca)), "get-token")
    assert result.returncode == 1
    assert "cannot reach the MQTT broker" in result.stderr
    assert "TLS handshake failed (self-signed certificate in certificate chain)" in result.stderr
    assert "check mqtt.ca_file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mqtt_options", ["wrong-password"], indirect=True)
def test_a_wrong_password_is_a_clear_error_and_the_agent_keeps_trying(
    mqtt_options: dict[str, object],
    agent: AgentProcess,
    watcher: Watcher,
    broker: SecureMosquitto,
    base_topic: str,
) -> None:
    def refusals() -> int:
        return agent.output().count(f"is up but refused the login of user '{USER}'")

    wait_until(lambda: refusals() >= 2, timeout=15, what="two refused connections")
    assert agent.process is not None and agent.process.poll() is None
    for command, hint in (
        (["get-token", "--timeout", "3"], "check mqtt.username and mqtt.password"),
        (["status", "--timeout", "3"], "the password sent comes from mqtt.password in "),
    ):
        result = cli(agent.config, *command)
        assert f"is up but refused the login of user '{USER}'" in result.stderr, command
        assert hint in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert cli(agent.config, "get-token", "--timeout", "3").returncode == 1

    set_password(broker.password_file, USER, "not the password")  # the admin fixes the broker
    broker.restart()
    watcher.wait_for(Topics(base_topic).health, healthy, timeout=40)
    assert agent.process.poll() is None
    assert "Traceback" not in agent.output()
