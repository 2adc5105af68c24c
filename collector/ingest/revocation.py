"""Revoked agent certificates: the CRL of the PKI folder, checked per stream.

gRPC's Python API has no option for a certificate revocation list: the TLS
handshake checks only that a client certificate chains to the CA. So the
servicer does it: every new stream's peer certificate (``x509_pem_cert`` in
the auth context) is looked up in ``D/crl.pem``, and a stream whose
certificate becomes revoked while it is open is ended.

The CRL is loaded at start if the file exists; one that does not parse or is
not signed by the CA stops the start (ConfigError naming the file). It is
reloaded when the file changes (polled every second, and looked at on every
new stream: a stat) and on SIGHUP. A reload that fails (bad file, file gone)
is logged and the revocations loaded before stay: a revocation is never
lifted by accident.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from collector.errors import ConfigError
from collector.pki import crl_path, load_ca_certificate, load_crl, reason_name

log = logging.getLogger(__name__)

# How often the CRL file's modification is looked for.
WATCH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    revoked_at: dt.datetime
    reason: str


@dataclass(slots=True, eq=False)  # compared (and hashed) by identity
class CertificateWatch:
    """One open stream's certificate; ``ended`` is set once the CRL lists it."""

    serial: int
    agent_id: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    revocation: Revocation | None = None


def peer_certificate(auth_context: Mapping[str, Iterable[bytes]]) -> x509.Certificate | None:
    """The peer's verified client certificate (None without one)."""
    pems = list(auth_context.get("x509_pem_cert", []))
    if not pems:
        return None
    try:
        return x509.load_pem_x509_certificate(pems[0])
    except ValueError:
        return None


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class RevocationList:
    def __init__(self, tls_dir: Path) -> None:
        self.path = crl_path(tls_dir)
        # The CA the gRPC server trusts, read once as the server credentials are.
        self._ca = load_ca_certificate(tls_dir)
        self._stamp = _stamp(self.path)
        self._revoked = self._load()  # ConfigError stops the start
        self._watches: collections.defaultdict[int, set[CertificateWatch]] = (
            collections.defaultdict(set)
        )
        if self._revoked:
            log.info("%s: %d revoked certificates", self.path, len(self._revoked))

    def __len__(self) -> int:
        return len(self._revoked)

    def _load(self) -> dict[int, Revocation]:
        crl = load_crl(self.path, self._ca)
        if crl is None:
            return {}
        return {
            entry.serial_number: Revocation(
                entry.serial_number, entry.revocation_date_utc, reason_name(entry)
            )
            for entry in crl
        }

    def lookup(self, serial: int) -> Revocation | None:
        return self._revoked.get(serial)

    def refresh(self) -> None:
        """Reload if the file changed since it was last read (a stat, nothing more)."""
        if _stamp(self.path) != self._stamp:
            self.reload()

    def reload(self) -> bool:
        """Read the CRL again; end the open streams it now revokes. False if it could not
        be used (logged; the revocations loaded before stay)."""
        self._stamp = _stamp(self.path)
        if not self.path.exists():
            if not self._revoked:
                return True  # none before, none now
            log.error("%s is gone; keeping the %d revocations loaded before",
                      self.path, len(self._revoked))  # fmt: skip
            return False
        try:
            fresh = self._load()
        except ConfigError as exc:
            log.error("CRL reload refused, keeping the %d revocations loaded before: %s",
                      len(self._revoked), exc)  # fmt: skip
            return False
        added = fresh.keys() - self._revoked.keys()
        self._revoked = fresh
        log.info("%s reloaded: %d revoked certificates, %d new", self.path, len(fresh), len(added))
        for serial in added & self._watches.keys():
            for watch in self._watches[serial]:
                watch.revocation = fresh[serial]
                watch.ended.set()
        return True

    def watch(self, certificate: x509.Certificate, agent_id: str) -> CertificateWatch:
        """Follow an open stream's certificate; ``ended`` is set at once if it is revoked."""
        serial = certificate.serial_number
        watch = CertificateWatch(serial, agent_id)
        self._watches[serial].add(watch)
        revocation = self._revoked.get(serial)
        if revocation is not None:
            watch.revocation = revocation
            watch.ended.set()
        return watch

    def forget(self, watch: CertificateWatch) -> None:
        watches = self._watches.get(watch.serial)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.serial]

    async def run(self) -> None:
        """Reload whenever the file changes, until cancelled."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            self.refresh()
