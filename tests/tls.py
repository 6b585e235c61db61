"""TLS for tests: a CA and certificates made on the spot, and a real TLS terminator (Debian's
stunnel4) in front of a plain broker port — Tansu's own TLS does not work in the build here."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _issue(name: str, issuer: x509.Name, issuer_key, key, *, ca: bool = False,  # noqa: ANN001
           server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlscore test CA")])
    ca = _issue("amlscore test CA", ca_name, ca_key, ca_key, ca=True)
    out = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"amlscore-{role}", ca_name, ca_key, key, server=role == "server")
        (directory / f"{role}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[role] = (directory / f"{role}.pem", _write_key(key, directory / f"{role}.key"))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Certificates(directory / "ca.pem", *out["server"], *out["client"])


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


@contextlib.contextmanager
def tls_terminator(accept_port: int, connect_port: int, certs: Certificates, directory: Path,
                   require_client_cert: bool = True) -> Iterator[subprocess.Popen]:
    """stunnel accepting TLS on ``accept_port`` and forwarding plain TCP to ``connect_port``."""
    binary = stunnel_binary()
    assert binary, "stunnel4 is not installed (.ci/run installs it)"
    config = directory / "stunnel.conf"
    config.write_text("\n".join([
        "foreground = yes", "pid =", "debug = warning", f"output = {directory / 'stunnel.log'}",
        "[kafka]", f"accept = 127.0.0.1:{accept_port}", f"connect = 127.0.0.1:{connect_port}",
        f"cert = {certs.server_cert}", f"key = {certs.server_key}",
        *([f"CAfile = {certs.ca}", "verifyChain = yes"] if require_client_cert else []), ""]))
    process = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (directory / "stunnel.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", accept_port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "stunnel did not listen"
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(5)
