"""The shipped bridge and TLS examples, proved on real brokers: the bridge carries the agent's tree
out to a central broker and lets only commands in; the TLS listener meets remote clients with the
same users and ACL as the loopback one (deploy/mosquitto/bridge.conf.example, tls.conf)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import (
    DEPLOY,
    MOSQUITTO,
    WAIT,
    Peer,
    free_port,
    start_broker,
    start_plain_broker,
    stop_broker,
    substitute,
)

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_passwd") is None or not Path(MOSQUITTO).exists(),
    reason="Mosquitto (mosquitto, mosquitto_passwd) is not installed",
)

BASE = "lofi/spotify"
TOKEN = b"gAAAAABfake-fernet-ciphertext-of-the-user-token"


def test_bridge_shares_the_tree_out_and_lets_only_commands_in(broker_dir: Path) -> None:
    """bridge.conf.example from the shipped broker (the Pi) to a central broker: the agent's
    retained token arrives centrally under the Pi's prefix, the same ciphertext; a central
    client's request comes in; a central client's fake token does not."""
    central = start_plain_broker(broker_dir / "central")
    try:
        bridge = (DEPLOY / "mosquitto" / "bridge.conf.example").read_text()
        bridge = substitute(bridge, "central-broker.example.lan:8883", f"127.0.0.1:{central.port}")
        bridge = "\n".join(
            line
            for line in bridge.splitlines()
            if not line.startswith(("bridge_cafile", "bridge_tls_version"))
        )
        pi = start_broker(broker_dir / "pi", extra_conf=f"\n{bridge}\n")
    except BaseException:
        stop_broker(central)
        raise
    prefix = "pi-livingroom/lofi/spotify"
    central_client = Peer(central.port, "anyone", "anything")
    pi_agent = Peer(pi.port, "mqtt-tokend", pi.passwords["mqtt-tokend"])
    try:
        for peer in (central_client, pi_agent):
            assert not peer.connect().is_failure  # type: ignore[attr-defined]
        central_client.subscribe("#")
        pi_agent.subscribe(f"{BASE}/#")
        # The bridge connects on its own schedule: republish until it forwards (a deadline).
        deadline = time.monotonic() + WAIT
        while not central_client.arrived(f"{prefix}/availability", timeout=0.1):
            assert time.monotonic() < deadline, f"the bridge never forwarded:\n{pi.log}"
            pi_agent.publish(f"{BASE}/availability", b"online", retain=True)
        pi_agent.publish(f"{BASE}/token", TOKEN, retain=True)
        central_client.wait_for(f"{prefix}/token", TOKEN)

        central_client.publish(f"{prefix}/token", b"central-spoof", retain=True)
        central_client.publish(f"{prefix}/request/refresh", b'{"reason": "central"}')
        pi_agent.wait_for(f"{BASE}/request/refresh", b'{"reason": "central"}')
        assert pi_agent.payloads(f"{BASE}/token") == [TOKEN]
    finally:
        central_client.close()
        pi_agent.close()
        stop_broker(pi)
        stop_broker(central)


def make_certificates(directory: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1; returns the CA's path."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    directory.chmod(0o755)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "server.key").chmod(0o644)  # read by the broker after it drops root
    return directory / "ca.crt"


def test_tls_listener_applies_the_same_users_and_acl(broker_dir: Path) -> None:
    """tls.conf as shipped (port, bind address and certificate paths aside) next to the
    loopback listener: remote clients over TLS meet the same password file and ACL."""
    certs = broker_dir / "certs"
    ca = make_certificates(certs)
    tls_port = free_port()
    tls = (DEPLOY / "mosquitto" / "tls.conf").read_text()
    tls = substitute(tls, "listener 8883", f"listener {tls_port} 127.0.0.1")
    tls = substitute(tls, "/etc/mosquitto/certs/server.crt", str(certs / "server.crt"))
    tls = substitute(tls, "/etc/mosquitto/certs/server.key", str(certs / "server.key"))
    started = start_broker(broker_dir / "broker", extra_conf=f"\n{tls}")
    peers: list[Peer] = []

    def over_tls(username: str | None, password: str | None = None) -> Peer:
        if username is not None and password is None:
            password = started.passwords[username]
        peer = Peer(tls_port, username, password, tls_ca=ca)
        peers.append(peer)
        return peer

    try:
        assert over_tls(None).connect().is_failure  # type: ignore[attr-defined]
        assert over_tls("lofi-player", "wrong").connect().is_failure  # type: ignore[attr-defined]
        agent = Peer(started.port, "mqtt-tokend", started.passwords["mqtt-tokend"])
        peers.append(agent)
        assert not agent.connect().is_failure  # type: ignore[attr-defined]
        agent.publish(f"{BASE}/token", TOKEN, retain=True)
        for username in ("lofi-player", "homeassistant"):
            remote = over_tls(username)
            assert not remote.connect().is_failure  # type: ignore[attr-defined]
            remote.subscribe(f"{BASE}/token", f"{BASE}/availability")
        player, ha = peers[-2], peers[-1]
        player.wait_for(f"{BASE}/token", TOKEN)
        agent.publish(f"{BASE}/availability", b"online")
        ha.wait_for(f"{BASE}/availability", b"online")
        assert ha.payloads(f"{BASE}/token") == []
    finally:
        for peer in peers:
            peer.close()
        stop_broker(started)
