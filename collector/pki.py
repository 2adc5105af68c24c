"""A small built-in PKI for deployments without one.

    pki init  --dir D --name collector.example.net --name 198.18.0.2
        D/ca.crt, D/ca.key             the CA that signs everything below
        D/collector.crt, .key          the collector's server certificate (those names)
    pki issue AGENT_ID --dir D [--renew-within DAYS]
        D/agents/AGENT_ID.crt, .key    an agent's client certificate; CN = the agent id
        D/agents/retired/AGENT_ID-SERIAL.crt, .key
                                       certificates a renewal replaced (revoked: superseded)
    pki revoke AGENT_ID --dir D [--reason TEXT]
        D/crl.pem                      the CA's certificate revocation list (X.509 CRL)
        D/agents/revoked/AGENT_ID-SERIAL.crt, .key (, .reason)
                                       certificates revoked by hand
    pki list --dir D                   every agent certificate and its state

SERIAL is the certificate's serial number in lower-case hex. The collector
trusts client certificates from this CA only, refuses those the CRL lists,
and takes an agent's identity from the certificate's common name. Keys are
written 0600 from the moment they exist, folders 0700; a key or certificate
is never overwritten: a renewal or revocation moves the old files aside. The
CRL (0644) is replaced whole, atomically (a temporary file renamed over it).
Commands that change the folder take a lock on D/.lock first, so that several
run at once (an Ansible play with forks) cannot lose each other's changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
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
CRL_NAME = "crl.pem"
RETIRED = "retired"
REVOKED = "revoked"
_LOCK_NAME = ".lock"

# What `pki revoke --reason` maps to an X.509 reason code. Any other text is
# kept beside the revoked certificate and the CRL says "unspecified".
REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "privilege-withdrawn": x509.ReasonFlags.privilege_withdrawn,
}
# A hold could be lifted, and removeFromCRL is for delta CRLs: neither is
# what a revocation here means (final).
_UNSUPPORTED_REASONS = ("certificate-hold", "remove-from-crl", "aa-compromise")

State = Literal["valid", "expired", "revoked"]
Location = Literal["current", "retired", "revoked"]


@dataclass(frozen=True, slots=True)
class Issued:
    cert_path: Path
    key_path: Path


@dataclass(frozen=True, slots=True)
class IssueResult:
    """What `pki issue` did: ``issued`` (no certificate before), ``unchanged`` (the
    current one is good for longer than asked), or ``renewed`` (the old one is in
    ``retired`` and, if it was this CA's, revoked as superseded)."""

    action: Literal["issued", "unchanged", "renewed"]
    issued: Issued
    certificate: x509.Certificate
    why: str = ""  # why a renewal was needed
    old_serial: int | None = None
    old_revoked: bool = False
    retired: Issued | None = None


@dataclass(frozen=True, slots=True)
class RevokeResult:
    """What `pki revoke` did: ``revoked`` (``serial`` is in the CRL now, its files in
    ``moved_to``) or ``unchanged`` (the agent has no current certificate, and an
    earlier one of it is revoked already: ``serial``)."""

    action: Literal["revoked", "unchanged"]
    agent_id: str
    serial: int
    reason: str
    crl_path: Path
    crl_entries: int
    moved_to: Issued | None = None


@dataclass(frozen=True, slots=True)
class AgentCertificate:
    """One agent certificate in the folder, for `pki list`."""

    agent_id: str
    serial: int
    not_after: dt.datetime
    state: State
    location: Location
    path: Path
    revoked_at: dt.datetime | None = None
    reason: str | None = None


def ca_paths(directory: Path) -> Issued:
    return Issued(directory / "ca.crt", directory / "ca.key")


def collector_paths(directory: Path) -> Issued:
    return Issued(directory / "collector.crt", directory / "collector.key")


def agent_paths(directory: Path, agent_id: str) -> Issued:
    return Issued(
        directory / "agents" / f"{agent_id}.crt", directory / "agents" / f"{agent_id}.key"
    )


def crl_path(directory: Path) -> Path:
    return directory / CRL_NAME


def serial_hex(serial: int) -> str:
    """How serial numbers are shown and put in file names."""
    return f"{serial:x}"


def _aside_paths(directory: Path, where: str, agent_id: str, serial: int) -> Issued:
    base = directory / "agents" / where / f"{agent_id}-{serial_hex(serial)}"
    return Issued(base.with_name(base.name + ".crt"), base.with_name(base.name + ".key"))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; slawatch never overwrites keys") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` whole: a reader sees the old file or the new one, never a part."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_aside(source: Path, target: Path) -> None:
    """Move without ever replacing: link to the new name, then drop the old one."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        # A move interrupted between link and unlink leaves the same file twice.
        if target.read_bytes() != source.read_bytes():
            raise ConfigError(
                f"cannot move {source} aside: {target} exists with other content"
            ) from None
    os.unlink(source)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One changing `pki` command at a time per folder (across processes)."""
    try:
        fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock {directory}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _save(issued: Issued, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    for path in (issued.cert_path, issued.key_path):
        if path.exists():
            raise ConfigError(f"{path} exists already; slawatch never overwrites keys")
    _write_new(issued.key_path, _key_pem(key), 0o600)
    _write_new(issued.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "slawatch"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _alt_names(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


_CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _load_ca(directory: Path) -> _CA:
    paths = ca_paths(directory)
    try:
        cert = x509.load_pem_x509_certificate(paths.cert_path.read_bytes())
        key = serialization.load_pem_private_key(paths.key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CA in {directory} (run `pki init`?): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{paths.key_path}: not an EC key made by `pki init`")
    return cert, key


def load_ca_certificate(directory: Path) -> x509.Certificate:
    path = ca_paths(directory).cert_path
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the CA certificate {path} (run `pki init`?): {exc}"
        ) from None


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable PEM certificate: {exc}") from None


def issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``ca_cert`` signed ``cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CRL at ``path`` if there is one, verified to be the CA's; a file that does not
    parse or verify is a ConfigError naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the CRL: {exc.strerror}") from None
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM X.509 CRL: {exc}") from None
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"the CA of {path} has no EC key (not made by `pki init`)")
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(public_key):
        raise ConfigError(
            f"{path}: this CRL is not signed by the CA ({ca_cert.subject.rfc4514_string()})"
        )
    return crl


def reason_name(entry: x509.RevokedCertificate) -> str:
    """The entry's reason code, as `pki revoke --reason` spells it."""
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "unspecified"
    for name, known in REASONS.items():
        if known is flag:
            return name
    return flag.value


def parse_reason(text: str) -> x509.ReasonFlags:
    """The X.509 reason code for ``--reason TEXT``: one of REASONS (also spelt as in
    RFC 5280, ``keyCompromise``, or with ``_``), else unspecified (the text itself is kept
    beside the revoked files)."""

    def folded(name: str) -> str:
        return "".join(c for c in name.lower() if c.isalnum())

    if folded(text) in {folded(name) for name in _UNSUPPORTED_REASONS}:
        raise ConfigError(
            f"--reason {text!r}: not supported here (a revocation is final); "
            f"use one of {', '.join(REASONS)} or any other text"
        )
    for name, flag in REASONS.items():
        if folded(text) == folded(name):
            return flag
    return x509.ReasonFlags.unspecified


def _add_to_crl(
    directory: Path, ca: _CA, serial: int, reason: x509.ReasonFlags, now: dt.datetime
) -> tuple[bool, int]:
    """Put ``serial`` into D/crl.pem (kept entries, new number, signed, replaced
    atomically). Returns whether it was new, and the entries the CRL has now."""
    ca_cert, ca_key = ca
    path = crl_path(directory)
    old = load_crl(path, ca_cert)
    entries = list(old) if old is not None else []
    if any(entry.serial_number == serial for entry in entries):
        return False, len(entries)
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
    if reason is not x509.ReasonFlags.unspecified:  # RFC 5280: leave out "unspecified"
        entry = entry.add_extension(x509.CRLReason(reason), critical=False)
    entries.append(entry.build())
    number = 1
    if old is not None:
        with contextlib.suppress(x509.ExtensionNotFound):
            number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    next_update = max(ca_cert.not_valid_after_utc, now + dt.timedelta(days=1))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for kept in entries:
        builder = builder.add_revoked_certificate(kept)
    crl = builder.sign(ca_key, hashes.SHA256())
    _write_atomic(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return True, len(entries)


def _sign(
    ca: _CA,
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
    """A client certificate whose common name is the agent's identity (never replaces one)."""
    return ensure_agent(directory, agent_id, days).issued


def ensure_agent(
    directory: Path, agent_id: str, days: int = LEAF_DAYS, renew_within: int | None = None
) -> IssueResult:
    """`pki issue`: a certificate for ``agent_id`` if it has none. If it has one: without
    ``renew_within`` refuse (ConfigError); with it, keep a certificate of this CA that is
    valid for more than ``renew_within`` days, else renew it (see IssueResult)."""
    ca = _load_ca(directory)
    issued = agent_paths(directory, agent_id)
    with _locked(directory):
        if renew_within is None or not issued.cert_path.exists():
            cert, key = _sign(ca, agent_id, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)
            if issued.cert_path.exists():
                raise ConfigError(
                    f"{issued.cert_path} exists already; slawatch never overwrites keys "
                    "(renew it with --renew-within DAYS, or `pki revoke` it first)"
                )
            _save(issued, cert, key)
            return IssueResult("issued", issued, cert)
        old = _read_certificate(issued.cert_path)
        now = dt.datetime.now(dt.UTC)
        why = _renewal_reason(directory, ca[0], agent_id, old, issued.key_path, renew_within, now)
        if why is None:
            return IssueResult("unchanged", issued, old)
        cert, key = _sign(ca, agent_id, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)
        ours = issued_by(old, ca[0])
        if ours:  # first: a crash after this leaves a revoked current one, renewed next time
            _add_to_crl(directory, ca, old.serial_number, x509.ReasonFlags.superseded, now)
        retired = _aside_paths(directory, RETIRED, agent_id, old.serial_number)
        _move_aside(issued.cert_path, retired.cert_path)
        if issued.key_path.exists():
            _move_aside(issued.key_path, retired.key_path)
        _save(issued, cert, key)
        return IssueResult("renewed", issued, cert, why, old.serial_number, ours, retired)


def _renewal_reason(
    directory: Path,
    ca_cert: x509.Certificate,
    agent_id: str,
    cert: x509.Certificate,
    key_path: Path,
    renew_within: int,
    now: dt.datetime,
) -> str | None:
    """Why the agent's current certificate must be renewed, or None if it is good."""
    if not issued_by(cert, ca_cert):
        return "it is not signed by this CA"
    if common_name(cert) != agent_id:
        return f"it is for {common_name(cert)!r}"
    crl = load_crl(crl_path(directory), ca_cert)
    if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number):
        return "it is revoked"
    left = cert.not_valid_after_utc - now
    if left <= dt.timedelta(days=renew_within):
        return f"it expires {cert.not_valid_after_utc:%Y-%m-%d}, within {renew_within} days"
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return f"its key {key_path} is missing or unreadable"
    if key.public_key() != cert.public_key():
        return f"its key {key_path} does not match it"
    return None


def revoke_agent(directory: Path, agent_id: str, reason: str = "unspecified") -> RevokeResult:
    """`pki revoke`: put the agent's current certificate into the CRL and move its files to
    D/agents/revoked/. An agent without a current certificate whose earlier one is revoked
    already is ``unchanged``; one that never had a certificate here is a ConfigError."""
    flag = parse_reason(reason)
    ca = _load_ca(directory)
    issued = agent_paths(directory, agent_id)
    with _locked(directory):
        if not issued.cert_path.exists():
            return _revoked_before(directory, ca[0], agent_id)
        cert = _read_certificate(issued.cert_path)
        if not issued_by(cert, ca[0]):
            raise ConfigError(
                f"{issued.cert_path} is not signed by the CA in {directory}; "
                "a CRL of this CA cannot revoke it"
            )
        now = dt.datetime.now(dt.UTC)
        serial = cert.serial_number
        # The CRL first: once it is written the certificate is refused, whatever follows.
        _added, entries = _add_to_crl(directory, ca, serial, flag, now)
        moved = _aside_paths(directory, REVOKED, agent_id, serial)
        if flag is x509.ReasonFlags.unspecified and reason.strip().lower() != "unspecified":
            note = moved.cert_path.with_suffix(".reason")
            note.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _write_atomic(note, f"{reason.strip()}\n".encode(), 0o644)
        _move_aside(issued.cert_path, moved.cert_path)
        if issued.key_path.exists():
            _move_aside(issued.key_path, moved.key_path)
        shown = reason.strip() or "unspecified"
        return RevokeResult("revoked", agent_id, serial, shown, crl_path(directory), entries, moved)


def _reason_text(cert_path: Path, entry: x509.RevokedCertificate) -> str:
    """The text given to `pki revoke --reason`, else the CRL entry's reason code."""
    note = cert_path.with_suffix(".reason")
    try:
        return note.read_text().strip() or reason_name(entry)
    except OSError:
        return reason_name(entry)


def _revoked_before(directory: Path, ca_cert: x509.Certificate, agent_id: str) -> RevokeResult:
    crl = load_crl(crl_path(directory), ca_cert)
    path = crl_path(directory)
    if crl is not None:
        for where in (REVOKED, RETIRED):
            for cert_path in sorted((directory / "agents" / where).glob("*.crt")):
                cert = _read_certificate(cert_path)
                if common_name(cert) != agent_id:
                    continue
                entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                if entry is not None:
                    return RevokeResult("unchanged", agent_id, cert.serial_number,
                                        _reason_text(cert_path, entry), path,
                                        len(crl))  # fmt: skip
    raise ConfigError(
        f"agent {agent_id!r} has no certificate in {directory} "
        f"({agent_paths(directory, agent_id).cert_path} does not exist, and none of its "
        "earlier ones is revoked): nothing to revoke"
    )


def list_agents(directory: Path, now: dt.datetime | None = None) -> list[AgentCertificate]:
    """Every agent certificate in the folder (current, retired, revoked) and its state."""
    ca_cert = load_ca_certificate(directory)
    crl = load_crl(crl_path(directory), ca_cert)
    now = now or dt.datetime.now(dt.UTC)
    found: list[AgentCertificate] = []
    places: list[tuple[Location, Path]] = [
        ("current", directory / "agents"),
        ("retired", directory / "agents" / RETIRED),
        ("revoked", directory / "agents" / REVOKED),
    ]
    for location, folder in places:
        for path in sorted(folder.glob("*.crt")):
            cert = _read_certificate(path)
            entry = None
            if crl is not None and issued_by(cert, ca_cert):
                entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            state: State
            if entry is not None:
                state = "revoked"
            elif cert.not_valid_after_utc <= now:
                state = "expired"
            else:
                state = "valid"
            reason = _reason_text(path, entry) if entry is not None else None
            found.append(AgentCertificate(
                common_name(cert), cert.serial_number, cert.not_valid_after_utc, state,
                location, path, entry.revocation_date_utc if entry is not None else None, reason,
            ))  # fmt: skip
    found.sort(key=lambda c: (c.agent_id, c.not_after, c.serial))
    return found
