"""A private CA and one server certificate for the local stack's TLS listeners.

Made with `cryptography` (no openssl or keytool on the path needed), once per stack directory
and kept across `up`s, so a client's `RUNWAY_KAFKA_SSL_CAFILE` stays valid; made again only when
a file is missing or a certificate is near its end. The server certificate names 127.0.0.1 and
localhost, so clients verify hostnames as they would in production. Kafka reads the key and its
chain from one PEM file (`ssl.keystore.type=PEM`); Redis from the separate key and certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    """Where the material lives under one directory."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def cert(self) -> Path:
        """The server certificate followed by the CA's (the chain)."""
        return self.root / "server-cert.pem"

    @property
    def key(self) -> Path:
        return self.root / "server-key.pem"

    @property
    def keystore(self) -> Path:
        """Kafka's PEM keystore: the unencrypted PKCS#8 key, then the chain."""
        return self.root / "server-keystore.pem"

    def all(self) -> tuple[Path, ...]:
        return (self.ca, self.cert, self.key, self.keystore)


@dataclass(frozen=True)
class Material:
    ca_pem: bytes
    cert_pem: bytes  # server certificate + CA certificate
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_material(hosts: tuple[str, ...] = HOSTS, now: dt.datetime | None = None) -> Material:
    """A fresh CA (P-256) and a server certificate for `hosts` signed by it."""
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)  # clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Runway local stack CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Material(ca_pem, server.public_bytes(serialization.Encoding.PEM) + ca_pem, key_pem)


def _fresh(files: TlsFiles, now: dt.datetime) -> bool:
    if not all(path.is_file() for path in files.all()):
        return False
    try:
        server = x509.load_pem_x509_certificate(files.cert.read_bytes())
    except ValueError:
        return False
    return server.not_valid_after_utc - now > RENEW_BEFORE


def _write(path: Path, data: bytes, mode: int) -> None:
    """Written whole (temporary file, then rename): a reader never sees half a key."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    temporary.replace(path)


def ensure_tls(root: Path, now: dt.datetime | None = None) -> TlsFiles:
    """The CA and server files under `root`, made when missing or due for renewal."""
    files = TlsFiles(root)
    moment = now or dt.datetime.now(dt.UTC)
    if _fresh(files, moment):
        return files
    root.mkdir(parents=True, exist_ok=True)
    material = make_material(now=moment)
    _write(files.key, material.key_pem, 0o600)
    _write(files.keystore, material.key_pem + material.cert_pem, 0o600)
    _write(files.cert, material.cert_pem, 0o644)
    _write(files.ca, material.ca_pem, 0o644)
    return files
