"""The local stack's CA and server certificate (stack/tls.py): a real TLS handshake in memory."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from stack.tls import RENEW_BEFORE, VALIDITY, ensure_tls


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """Run a TLS handshake between two contexts over memory BIOs (raises on failure)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def server_context(key: Path, cert: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_a_client_trusting_the_ca_verifies_the_server(tmp_path: Path, hostname: str) -> None:
    files = ensure_tls(tmp_path / "tls")
    client = ssl.create_default_context(cafile=str(files.ca))
    handshake(server_context(files.key, files.cert), client, hostname)


def test_kafkas_keystore_is_the_key_then_the_chain(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    text = files.keystore.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert text.count("-----BEGIN CERTIFICATE-----") == 2
    server = server_context(files.keystore, files.keystore)  # key and chain from the one file
    handshake(server, ssl.create_default_context(cafile=str(files.ca)), "127.0.0.1")


def test_another_ca_or_another_name_is_refused(tmp_path: Path) -> None:
    ours = ensure_tls(tmp_path / "ours")
    other = ensure_tls(tmp_path / "other")
    server = server_context(ours.key, ours.cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, ssl.create_default_context(cafile=str(other.ca)), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, ssl.create_default_context(cafile=str(ours.ca)), "kafka.example.com")


def test_keys_are_private_and_the_ca_is_not(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.keystore.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca.stat().st_mode) == 0o644


def test_kept_across_calls_and_renewed_near_the_end(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    first = files.ca.read_bytes()
    assert ensure_tls(tmp_path).ca.read_bytes() == first  # clients' CA file stays valid
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == VALIDITY
    late = cert.not_valid_after_utc - RENEW_BEFORE + dt.timedelta(seconds=1)
    assert ensure_tls(tmp_path, now=late).ca.read_bytes() != first
    files.key.unlink()
    second = ensure_tls(tmp_path).ca.read_bytes()
    assert files.key.exists() and second != first
