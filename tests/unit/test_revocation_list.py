"""The collector's view of the CRL (collector/ingest/revocation.py), on real PKI files."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from collector import pki
from collector.errors import ConfigError
from collector.ingest.revocation import RevocationList, peer_certificate


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    pki.init(directory, ["127.0.0.1"])
    return directory


def _issue(directory: Path, agent_id: str) -> x509.Certificate:
    path = pki.issue_agent(directory, agent_id).cert_path
    return x509.load_pem_x509_certificate(path.read_bytes())


def _bump(path: Path) -> None:
    """Make sure a stat sees the change even on a coarse-clock filesystem."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


def test_no_crl_file_means_nothing_is_revoked(pki_dir: Path) -> None:
    revocations = RevocationList(pki_dir)
    assert len(revocations) == 0
    assert revocations.lookup(_issue(pki_dir, "a").serial_number) is None


def test_a_crl_at_start_is_loaded(pki_dir: Path) -> None:
    cert = _issue(pki_dir, "a")
    pki.revoke_agent(pki_dir, "a", "key-compromise")
    revocations = RevocationList(pki_dir)
    found = revocations.lookup(cert.serial_number)
    assert found is not None
    assert found.reason == "key-compromise"


@pytest.mark.parametrize("content", ["garbage\n", "foreign"])
def test_a_bad_crl_stops_the_start_naming_the_file(
    pki_dir: Path, tmp_path: Path, content: str
) -> None:
    if content == "foreign":
        other = tmp_path / "other"
        pki.init(other, ["127.0.0.1"])
        pki.issue_agent(other, "a")
        pki.revoke_agent(other, "a")
        shutil.copy(pki.crl_path(other), pki.crl_path(pki_dir))
    else:
        pki.crl_path(pki_dir).write_text(content)
    with pytest.raises(ConfigError, match=str(pki.crl_path(pki_dir))):
        RevocationList(pki_dir)


def test_a_change_ends_the_watched_streams_it_revokes(pki_dir: Path) -> None:
    a, b = _issue(pki_dir, "a"), _issue(pki_dir, "b")
    revocations = RevocationList(pki_dir)
    watch_a, watch_b = revocations.watch(a, "a"), revocations.watch(b, "b")
    revocations.refresh()
    assert not watch_a.ended.is_set()
    pki.revoke_agent(pki_dir, "a")
    revocations.refresh()  # the file changed: reloaded
    assert watch_a.ended.is_set()
    assert watch_a.revocation is not None
    assert watch_a.revocation.serial == a.serial_number
    assert not watch_b.ended.is_set()
    # A stream starting with a revoked certificate is ended from the start.
    assert revocations.watch(a, "a").ended.is_set()
    revocations.forget(watch_b)
    pki.revoke_agent(pki_dir, "b")
    revocations.refresh()
    assert not watch_b.ended.is_set()  # forgotten: no longer followed


def test_an_invalid_or_missing_new_crl_keeps_the_old_one(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _issue(pki_dir, "a")
    pki.revoke_agent(pki_dir, "a")
    revocations = RevocationList(pki_dir)
    path = pki.crl_path(pki_dir)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    _bump(path)
    with caplog.at_level(logging.ERROR):
        revocations.refresh()
    assert "CRL reload refused" in caplog.text
    assert str(path) in caplog.text
    assert revocations.lookup(a.serial_number) is not None
    path.unlink()
    assert revocations.reload() is False
    assert revocations.lookup(a.serial_number) is not None
    path.write_bytes(good)
    assert revocations.reload() is True


def test_peer_certificate_from_the_auth_context(pki_dir: Path) -> None:
    cert = _issue(pki_dir, "a")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert peer_certificate({"x509_pem_cert": [pem]}) == cert
    assert peer_certificate({}) is None
    assert peer_certificate({"x509_pem_cert": [b"nonsense"]}) is None
