"""The built-in PKI's renewal and revocation (collector/pki.py), on real files.

Certificates and CRLs are made by the real code and checked with cryptography
and, where it is installed, with `openssl` as an outside opinion.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from collector import pki
from collector.errors import ConfigError


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    pki.init(directory, ["127.0.0.1"])
    return directory


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _crl(directory: Path) -> x509.CertificateRevocationList:
    """D/crl.pem, parsed and checked to be signed by D's CA."""
    crl = x509.load_pem_x509_crl(pki.crl_path(directory).read_bytes())
    ca_key = _cert(pki.ca_paths(directory).cert_path).public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(ca_key)
    return crl


def _crl_reason(crl: x509.CertificateRevocationList, serial: int) -> x509.ReasonFlags | None:
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None, f"serial {serial:x} is not in the CRL"
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _openssl_verifies_crl(directory: Path) -> None:
    if shutil.which("openssl") is None:
        return
    done = subprocess.run(
        ["openssl", "crl", "-in", str(pki.crl_path(directory)), "-noout",
         "-CAfile", str(pki.ca_paths(directory).cert_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert "verify OK" in done.stderr + done.stdout, done


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_renew_within_keeps_a_certificate_that_is_valid_long_enough(pki_dir: Path) -> None:
    first = pki.ensure_agent(pki_dir, "hv-1", days=5)
    assert first.action == "issued"
    before = _files(pki_dir)
    again = pki.ensure_agent(pki_dir, "hv-1", days=825, renew_within=3)
    assert again.action == "unchanged"
    assert again.certificate.serial_number == first.certificate.serial_number
    assert _files(pki_dir) == before  # nothing written, no CRL made
    assert not pki.crl_path(pki_dir).exists()


def test_renew_within_renews_a_certificate_close_to_expiry(pki_dir: Path) -> None:
    old = pki.ensure_agent(pki_dir, "hv-1", days=5).certificate
    old_key = pki.agent_paths(pki_dir, "hv-1").key_path.read_bytes()
    done = pki.ensure_agent(pki_dir, "hv-1", days=825, renew_within=10)
    assert done.action == "renewed"
    assert done.old_serial == old.serial_number
    assert done.old_revoked
    new = _cert(done.issued.cert_path)
    assert new.serial_number != old.serial_number
    assert pki.common_name(new) == "hv-1"
    assert new.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=824)
    assert done.issued.key_path.read_bytes() != old_key
    assert done.issued.key_path.stat().st_mode & 0o777 == 0o600
    # The old files, named by serial, in agents/retired/; nothing was overwritten.
    retired = pki_dir / "agents" / "retired"
    hex_serial = f"{old.serial_number:x}"
    assert sorted(p.name for p in retired.iterdir()) == [
        f"hv-1-{hex_serial}.crt",
        f"hv-1-{hex_serial}.key",
    ]
    assert _cert(retired / f"hv-1-{hex_serial}.crt") == old
    assert (retired / f"hv-1-{hex_serial}.key").read_bytes() == old_key
    assert (retired / f"hv-1-{hex_serial}.key").stat().st_mode & 0o777 == 0o600
    # The old serial is revoked as superseded; the new one is not.
    crl = _crl(pki_dir)
    assert _crl_reason(crl, old.serial_number) is x509.ReasonFlags.superseded
    assert crl.get_revoked_certificate_by_serial_number(new.serial_number) is None
    _openssl_verifies_crl(pki_dir)
    # The renewed certificate is good for long: the next run leaves it alone.
    assert pki.ensure_agent(pki_dir, "hv-1", renew_within=10).action == "unchanged"


def test_renewal_replaces_a_certificate_of_another_ca_without_a_crl_entry(
    pki_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    pki.init(other, ["127.0.0.1"])
    foreign = pki.issue_agent(other, "hv-1")
    ours = pki.agent_paths(pki_dir, "hv-1")
    ours.cert_path.parent.mkdir(mode=0o700)
    shutil.copy(foreign.cert_path, ours.cert_path)
    shutil.copy(foreign.key_path, ours.key_path)
    done = pki.ensure_agent(pki_dir, "hv-1", renew_within=10)
    assert done.action == "renewed"
    assert not done.old_revoked
    assert "not signed by this CA" in done.why
    assert pki.issued_by(_cert(ours.cert_path), _cert(pki.ca_paths(pki_dir).cert_path))
    assert not pki.crl_path(pki_dir).exists()


def test_renewal_replaces_a_current_certificate_that_is_revoked(pki_dir: Path) -> None:
    """What a renewal interrupted right after writing the CRL leaves: renewed next time."""
    first = pki.issue_agent(pki_dir, "hv-1")
    serial = _cert(first.cert_path).serial_number
    ca = pki._load_ca(pki_dir)
    pki._add_to_crl(pki_dir, ca, serial, x509.ReasonFlags.superseded, dt.datetime.now(dt.UTC))
    done = pki.ensure_agent(pki_dir, "hv-1", renew_within=10)
    assert done.action == "renewed"
    assert done.why == "it is revoked"
    assert len(_crl(pki_dir)) == 1  # the entry is not doubled


def test_renewal_replaces_a_certificate_whose_key_is_missing(pki_dir: Path) -> None:
    issued = pki.issue_agent(pki_dir, "hv-1")
    issued.key_path.unlink()
    done = pki.ensure_agent(pki_dir, "hv-1", renew_within=10)
    assert done.action == "renewed"
    assert "missing" in done.why
    assert issued.key_path.exists()


def test_an_existing_certificate_is_never_overwritten_without_renew_within(
    pki_dir: Path,
) -> None:
    pki.issue_agent(pki_dir, "hv-1")
    before = _files(pki_dir)
    with pytest.raises(ConfigError, match=r"hv-1\.crt exists already.*--renew-within"):
        pki.ensure_agent(pki_dir, "hv-1")
    assert _files(pki_dir) == before


def test_revoke_writes_a_signed_crl_and_moves_the_files(pki_dir: Path) -> None:
    issued = pki.issue_agent(pki_dir, "hv-1")
    cert, key = _cert(issued.cert_path), issued.key_path.read_bytes()
    done = pki.revoke_agent(pki_dir, "hv-1")
    assert done.action == "revoked"
    assert done.serial == cert.serial_number
    crl = _crl(pki_dir)
    assert len(crl) == 1
    assert _crl_reason(crl, cert.serial_number) is None  # unspecified: no extension (RFC 5280)
    assert crl.issuer == _cert(pki.ca_paths(pki_dir).cert_path).subject
    assert pki.crl_path(pki_dir).stat().st_mode & 0o777 == 0o644
    _openssl_verifies_crl(pki_dir)
    assert not issued.cert_path.exists()
    assert not issued.key_path.exists()
    moved = pki_dir / "agents" / "revoked" / f"hv-1-{cert.serial_number:x}"
    assert _cert(moved.with_name(moved.name + ".crt")) == cert
    assert moved.with_name(moved.name + ".key").read_bytes() == key
    assert not list(pki_dir.glob(".crl.pem.*"))  # no temporary file left


def test_revoking_twice_is_unchanged_and_writes_nothing(pki_dir: Path) -> None:
    issued = pki.issue_agent(pki_dir, "hv-1")
    serial = _cert(issued.cert_path).serial_number
    pki.revoke_agent(pki_dir, "hv-1", "key-compromise")
    before = _files(pki_dir)
    again = pki.revoke_agent(pki_dir, "hv-1", "key-compromise")
    assert again.action == "unchanged"
    assert again.serial == serial
    assert again.reason == "key-compromise"
    assert _files(pki_dir) == before


def test_revocations_keep_the_earlier_entries(pki_dir: Path) -> None:
    serials = []
    numbers = []
    for agent in ("hv-1", "hv-2", "hv-3"):
        serials.append(_cert(pki.issue_agent(pki_dir, agent).cert_path).serial_number)
        pki.revoke_agent(pki_dir, agent)
        crl = _crl(pki_dir)
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        assert sorted(e.serial_number for e in crl) == sorted(serials)
    assert numbers == [1, 2, 3]


def test_revoking_an_agent_never_issued_names_it_and_the_folder(pki_dir: Path) -> None:
    pki.issue_agent(pki_dir, "hv-1")
    with pytest.raises(ConfigError) as info:
        pki.revoke_agent(pki_dir, "hv-9")
    assert "'hv-9'" in str(info.value)
    assert str(pki_dir) in str(info.value)
    assert not pki.crl_path(pki_dir).exists()


def test_a_revoked_agent_can_be_issued_a_fresh_certificate(pki_dir: Path) -> None:
    old = _cert(pki.issue_agent(pki_dir, "hv-1").cert_path)
    pki.revoke_agent(pki_dir, "hv-1", "cessation-of-operation")
    fresh = pki.ensure_agent(pki_dir, "hv-1")
    assert fresh.action == "issued"
    assert fresh.certificate.serial_number != old.serial_number
    crl = _crl(pki_dir)
    assert _crl_reason(crl, old.serial_number) is x509.ReasonFlags.cessation_of_operation
    assert crl.get_revoked_certificate_by_serial_number(fresh.certificate.serial_number) is None
    listed = {(c.serial, c.state, c.location) for c in pki.list_agents(pki_dir)}
    assert listed == {
        (old.serial_number, "revoked", "revoked"),
        (fresh.certificate.serial_number, "valid", "current"),
    }
    # Revoking the fresh one revokes that one, beside the old.
    assert pki.revoke_agent(pki_dir, "hv-1").serial == fresh.certificate.serial_number
    assert len(_crl(pki_dir)) == 2


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("key-compromise", x509.ReasonFlags.key_compromise),
        ("keyCompromise", x509.ReasonFlags.key_compromise),
        ("cessation_of_operation", x509.ReasonFlags.cessation_of_operation),
        ("Superseded", x509.ReasonFlags.superseded),
        ("host decommissioned", None),
    ],
)
def test_revocation_reasons(pki_dir: Path, text: str, flag: x509.ReasonFlags | None) -> None:
    serial = _cert(pki.issue_agent(pki_dir, "hv-1").cert_path).serial_number
    done = pki.revoke_agent(pki_dir, "hv-1", text)
    assert _crl_reason(_crl(pki_dir), serial) is flag
    assert done.reason == text
    (listed,) = pki.list_agents(pki_dir)
    assert listed.reason == (text if flag is None else pki.reason_name(
        _crl(pki_dir).get_revoked_certificate_by_serial_number(serial)  # type: ignore[arg-type]
    ))  # fmt: skip


def test_a_hold_is_not_a_revocation_here(pki_dir: Path) -> None:
    issued = pki.issue_agent(pki_dir, "hv-1")
    with pytest.raises(ConfigError, match="not supported"):
        pki.revoke_agent(pki_dir, "hv-1", "certificateHold")
    assert issued.cert_path.exists()
    assert not pki.crl_path(pki_dir).exists()


def test_an_interrupted_crl_write_leaves_the_old_crl_whole(
    pki_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki.issue_agent(pki_dir, "hv-1")
    pki.revoke_agent(pki_dir, "hv-1")
    before = pki.crl_path(pki_dir).read_bytes()
    second = pki.issue_agent(pki_dir, "hv-2")

    def crash(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        pki.revoke_agent(pki_dir, "hv-2")
    monkeypatch.undo()
    assert pki.crl_path(pki_dir).read_bytes() == before
    assert not list(pki_dir.glob(".crl.pem.*"))
    assert second.cert_path.exists()  # not moved: the CRL does not list it
    assert pki.revoke_agent(pki_dir, "hv-2").action == "revoked"
    assert len(_crl(pki_dir)) == 2


def test_a_reader_never_sees_part_of_a_crl(pki_dir: Path) -> None:
    agents = [f"hv-{i}" for i in range(12)]
    for agent in agents:
        pki.issue_agent(pki_dir, agent)
    pki.revoke_agent(pki_dir, agents[0])
    stop = threading.Event()
    reads: list[int] = []
    bad: list[Exception] = []

    def read() -> None:
        while not stop.is_set():
            try:
                reads.append(len(_crl(pki_dir)))
            except Exception as exc:
                bad.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for agent in agents[1:]:
            pki.revoke_agent(pki_dir, agent)
    finally:
        stop.set()
        reader.join()
    assert not bad, bad[:3]
    assert reads
    assert reads == sorted(reads)
    assert reads[-1] <= len(agents)


def test_concurrent_revocations_lose_no_entry(pki_dir: Path) -> None:
    """The lock: several `pki revoke` at once (Ansible forks) all end up in the CRL."""
    agents = [f"hv-{i}" for i in range(8)]
    serials = {_cert(pki.issue_agent(pki_dir, a).cert_path).serial_number for a in agents}
    start = threading.Barrier(len(agents))
    errors: list[Exception] = []

    def revoke(agent: str) -> None:
        start.wait()
        try:
            pki.revoke_agent(pki_dir, agent)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=revoke, args=(a,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {e.serial_number for e in _crl(pki_dir)} == serials


def test_list_states(pki_dir: Path) -> None:
    short = pki.ensure_agent(pki_dir, "hv-short", days=2).certificate
    long = pki.ensure_agent(pki_dir, "hv-long", days=825).certificate
    gone = pki.ensure_agent(pki_dir, "hv-gone").certificate
    pki.revoke_agent(pki_dir, "hv-gone")
    in_ten_days = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    listed = {c.agent_id: c for c in pki.list_agents(pki_dir, now=in_ten_days)}
    assert {a: (c.state, c.location) for a, c in listed.items()} == {
        "hv-short": ("expired", "current"),
        "hv-long": ("valid", "current"),
        "hv-gone": ("revoked", "revoked"),
    }
    assert listed["hv-short"].not_after == short.not_valid_after_utc
    assert listed["hv-long"].serial == long.serial_number
    assert listed["hv-gone"].revoked_at is not None
    assert listed["hv-gone"].serial == gone.serial_number
    now = {c.agent_id: c.state for c in pki.list_agents(pki_dir)}
    assert now["hv-short"] == "valid"


def test_a_crl_of_another_ca_or_garbage_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init(other, ["127.0.0.1"])
    pki.issue_agent(other, "x")
    pki.revoke_agent(other, "x")
    ca = _cert(pki.ca_paths(pki_dir).cert_path)
    with pytest.raises(ConfigError, match=r"crl\.pem: this CRL is not signed by the CA"):
        pki.load_crl(pki.crl_path(other), ca)
    garbage = tmp_path / "crl.pem"
    garbage.write_text("-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")
    with pytest.raises(ConfigError, match=r"crl\.pem: not a PEM X\.509 CRL"):
        pki.load_crl(garbage, ca)
    assert pki.load_crl(tmp_path / "absent.pem", ca) is None
    # ... and revoking in a folder whose CRL is foreign refuses to replace it.
    shutil.copy(pki.crl_path(other), pki.crl_path(pki_dir))
    pki.issue_agent(pki_dir, "hv-1")
    with pytest.raises(ConfigError, match="not signed by the CA"):
        pki.revoke_agent(pki_dir, "hv-1")
