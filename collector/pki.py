"""A small built-in PKI for deployments without one.

    pki init  --dir D --name collector.example.net --name 198.18.0.2
        D/ca.crt, D/ca.key             the CA that signs everything below
        D/collector.crt, .key          the collector's server certificate (those names)
    pki issue AGENT_ID --dir D
        D/agents/AGENT_ID.crt, .key    an agent's client certificate; CN = the agent id

The collector trusts client certificates from this CA only and takes an
agent's identity from the certificate's common name. Keys are written 0600
from the moment they exist, folders 0700; nothing is ever overwritten.
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

from collector.errors import ConfigError

CA_DAYS = 3650
LEAF_DAYS = 825
_BACKDATE = dt.timedelta(hours=1)  # tolerate clocks slightly behind
_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Issued:
    cert_path: Path
    key_path: Path


def ca_paths(directory: Path) -> Issued:
    return Issued(directory / "ca.crt", directory / "ca.key")


def collector_paths(directory: Path) -> Issued:
    return Issued(directory / "collector.crt", directory / "collector.key")


def agent_paths(directory: Path, agent_id: str) -> Issued:
    return Issued(
        directory / "agents" / f"{agent_id}.crt", directory / "agents" / f"{agent_id}.key"
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; slawatch never overwrites keys") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _save(issued: Issued, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    for path in (issued.cert_path, issued.key_path):
        if path.exists():
            raise ConfigError(f"{path} exists already; slawatch never overwrites keys")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(issued.key_path, key_pem, 0o600)
    _write_new(issued.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "slawatch"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def _alt_names(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    paths = ca_paths(directory)
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_path.read_bytes())
        key = serialization.load_pem_private_key(paths.key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CA in {directory} (run `pki init`?): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{paths.key_path}: not an EC key made by `pki init`")
    return cert, key


def _sign(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt_names: list[str],
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(_alt_names(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def init(directory: Path, collector_names: list[str], days: int = LEAF_DAYS) -> None:
    """Make the CA and the collector's server certificate for ``collector_names``."""
    if not collector_names:
        raise ConfigError("pki init: give the collector's names or addresses (--name)")
    if ca_paths(directory).key_path.exists():
        raise ConfigError(f"{directory} has a CA already; slawatch never overwrites keys")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = _name("slawatch CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    _save(ca_paths(directory), ca_cert, key)
    server = _sign((ca_cert, key), collector_names[0], ExtendedKeyUsageOID.SERVER_AUTH,
                   collector_names, days)  # fmt: skip
    _save(collector_paths(directory), *server)


def issue_agent(directory: Path, agent_id: str, days: int = LEAF_DAYS) -> Issued:
    """A client certificate whose common name is the agent's identity."""
    ca = _load_ca(directory)
    issued = agent_paths(directory, agent_id)
    _save(issued, *_sign(ca, agent_id, ExtendedKeyUsageOID.CLIENT_AUTH, [], days))
    return issued
