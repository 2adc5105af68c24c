"""A throwaway certificate authority for TLS tests, made fresh in a test's temp dir.

    ca = make_ca(tmp_path)
    good = ca.issue(tmp_path, "web", san_ips=[target_ip])
    expired = ca.issue(tmp_path, "old", san_ips=[target_ip],
                       not_before=days_from_now(-30), not_after=days_from_now(-1))
    wrong = ca.issue(tmp_path, "other", san_dns=["not-this-host.example"])

Clients trust ``ca.cert_path`` and nothing else, so a test can show a probe
accepting a good certificate and rejecting an expired or wrong-name one without
any system trust store involved. Keys are ECDSA P-256: they take a millisecond to
make (RSA takes far longer) and every TLS stack the tests use speaks ECDSA.
Private keys are written 0600, certificates 0644.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start an hour back so that small clock differences between the
# test process and the server never make a fresh certificate "not yet valid".
_BACKDATE = dt.timedelta(hours=1)
_DEFAULT_LIFETIME = dt.timedelta(days=30)


class CertPair(NamedTuple):
    """Paths of a PEM certificate and its PEM private key (unpacks as a pair)."""

    cert_path: Path
    key_path: Path


def days_from_now(days: float) -> dt.datetime:
    """An aware UTC time ``days`` from now (negative for the past), for validity bounds."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write the key so that it is never readable by others, not even for a moment."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(path, 0o600)  # in case the umask was stricter than asked


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "slawatch lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(
    san_ips: Iterable[str], san_dns: Iterable[str]
) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in san_dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in san_ips]
    if not names:
        raise ValueError("a server certificate needs at least one SAN (IP or DNS name)")
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class Ca:
    """A self-signed CA whose certificate clients trust; it issues server certificates."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        directory: Path,
        name: str,
        san_ips: Iterable[str] = (),
        san_dns: Iterable[str] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CertPair:
        """Issue a server certificate, writing ``<name>.crt`` and ``<name>.key`` in ``directory``.

        The names a client checks live only in the SANs (the CN is ``name``, which
        modern clients ignore), so a certificate whose SANs leave out the address
        a client dials is a wrong-name certificate. ``not_before``/``not_after``
        default to an hour ago and 30 days on; pass past times for an expired one.
        """
        start = not_before or days_from_now(0) - _BACKDATE
        end = not_after or days_from_now(0) + _DEFAULT_LIFETIME
        if end <= start:
            raise ValueError(f"certificate {name}: not_after {end} is not after {start}")
        key = _new_key()
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_subject_alt_names(san_ips, san_dns), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )
        pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
        directory.mkdir(parents=True, exist_ok=True)
        _write_key(pair.key_path, key)
        _write_cert(pair.cert_path, cert)
        return pair


def _usage(cert_sign: bool) -> x509.KeyUsage:
    """Key usage for a CA (signs certificates) or an ECDSA server (signs handshakes)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(directory: Path, common_name: str = "slawatch lab CA") -> Ca:
    """Make a CA valid from an hour ago for a year; write ``ca.crt`` and ``ca.key``.

    The extensions (basic constraints, key usage, key identifiers) are the ones
    strict verifiers insist on, so the CA is accepted by OpenSSL's X509_STRICT
    mode as well as by default client settings.
    """
    key = _new_key()
    subject = _name(common_name)
    now = days_from_now(0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca = Ca(directory / "ca.crt", directory / "ca.key", cert, key)
    _write_key(ca.key_path, key)
    _write_cert(ca.cert_path, cert)
    return ca
