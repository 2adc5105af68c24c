"""`slawatch-collector pki issue / revoke / list`: the interface the Ansible roles use.

What a role depends on: the first word of the one line printed (issued,
unchanged, renewed, revoked), the exit status (0, or non-zero with the error
on stderr), and where the files are.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from collector import pki
from collector.cli import main
from tests.conftest import COLLECTOR_CMD


def _pki(*argv: str) -> Result:
    return CliRunner().invoke(main, ["pki", *argv])


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    assert _pki("init", "--dir", str(directory), "--name", "127.0.0.1").exit_code == 0
    return directory


def _serial(path: Path) -> str:
    return f"{x509.load_pem_x509_certificate(path.read_bytes()).serial_number:x}"


def test_issue_then_renew_within(pki_dir: Path) -> None:
    d = str(pki_dir)
    cert = pki_dir / "agents" / "hv-1.crt"
    first = _pki("issue", "hv-1", "--dir", d, "--days", "5")
    assert first.exit_code == 0
    assert first.output.startswith(f"issued {cert} (serial {_serial(cert)}, expires ")
    assert first.output.count("\n") == 1
    # Without --renew-within an existing certificate is an error, as it always was.
    refused = _pki("issue", "hv-1", "--dir", d)
    assert refused.exit_code != 0
    assert "exists already" in refused.output
    old = _serial(cert)
    kept = _pki("issue", "hv-1", "--dir", d, "--renew-within", "3")
    assert kept.exit_code == 0
    assert kept.output.startswith(f"unchanged {cert} (serial {old}")
    renewed = _pki("issue", "hv-1", "--dir", d, "--renew-within", "10")
    assert renewed.exit_code == 0, renewed.output
    assert renewed.output.startswith(f"renewed {cert} (serial {_serial(cert)}")
    assert f"old serial {old} revoked as superseded" in renewed.output
    assert (pki_dir / "agents" / "retired" / f"hv-1-{old}.crt").exists()
    assert (pki_dir / "agents" / "retired" / f"hv-1-{old}.key").exists()
    assert _pki("issue", "hv-1", "--dir", d, "--renew-within", "10").output.startswith("unchanged")


def test_renew_within_for_an_agent_without_certificate_issues(pki_dir: Path) -> None:
    done = _pki("issue", "hv-2", "--dir", str(pki_dir), "--renew-within", "30")
    assert done.exit_code == 0
    assert done.output.startswith("issued ")


def test_renew_within_not_below_days_warns(pki_dir: Path) -> None:
    done = CliRunner().invoke(
        main, ["pki", "issue", "hv-1", "--dir", str(pki_dir), "--days", "5",
               "--renew-within", "10"],
    )  # fmt: skip
    assert done.exit_code == 0
    assert "renewed again on the next run" in done.stderr
    assert done.stdout.startswith("issued ")


def test_revoke_and_again_and_reissue(pki_dir: Path) -> None:
    d = str(pki_dir)
    _pki("issue", "hv-1", "--dir", d)
    serial = _serial(pki_dir / "agents" / "hv-1.crt")
    done = _pki("revoke", "hv-1", "--dir", d, "--reason", "key-compromise")
    assert done.exit_code == 0
    assert done.output.startswith(f"revoked hv-1 serial {serial} (key-compromise)")
    assert (pki_dir / "agents" / "revoked" / f"hv-1-{serial}.crt").exists()
    again = _pki("revoke", "hv-1", "--dir", d)
    assert again.exit_code == 0
    assert again.output.startswith("unchanged hv-1")
    assert serial in again.output
    fresh = _pki("issue", "hv-1", "--dir", d)
    assert fresh.exit_code == 0
    assert fresh.output.startswith("issued ")
    assert _serial(pki_dir / "agents" / "hv-1.crt") != serial


def test_revoke_an_agent_never_issued(pki_dir: Path) -> None:
    done = _pki("revoke", "hv-9", "--dir", str(pki_dir))
    assert done.exit_code == 2
    assert "'hv-9'" in done.output
    assert str(pki_dir) in done.output


def test_a_bad_agent_id_is_refused(pki_dir: Path) -> None:
    for command in ("issue", "revoke"):
        done = _pki(command, "../etc", "--dir", str(pki_dir))
        assert done.exit_code == 2
        assert "must match" in done.output


def test_list_json_and_table(pki_dir: Path) -> None:
    d = str(pki_dir)
    _pki("issue", "hv-1", "--dir", d, "--days", "5")
    _pki("issue", "hv-1", "--dir", d, "--renew-within", "10")
    _pki("issue", "hv-2", "--dir", d)
    _pki("revoke", "hv-2", "--dir", d, "--reason", "host decommissioned")
    done = _pki("list", "--dir", d, "--format", "json")
    assert done.exit_code == 0
    rows = json.loads(done.output)
    summary = sorted((r["agent_id"], r["state"], r["location"], r["reason"]) for r in rows)
    assert summary == [
        ("hv-1", "revoked", "retired", "superseded"),
        ("hv-1", "valid", "current", None),
        ("hv-2", "revoked", "revoked", "host decommissioned"),
    ]
    for row in rows:
        assert row["serial"] == _serial(Path(row["path"]))
        assert row["not_after"].endswith("Z")
    table = _pki("list", "--dir", d)
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["agent_id", "serial", "not_after", "state", "location", "reason"]
    assert len(lines) == 4


def test_list_without_a_pki(tmp_path: Path) -> None:
    done = _pki("list", "--dir", str(tmp_path))
    assert done.exit_code == 2
    assert "pki init" in done.output


def test_parallel_revokes_by_separate_processes_all_count(pki_dir: Path) -> None:
    """Several `pki revoke` processes at once, as Ansible forks run them: the lock keeps
    every one's entry."""
    agents = [f"hv-{i}" for i in range(5)]
    for agent in agents:
        pki.issue_agent(pki_dir, agent)
    procs = [
        subprocess.Popen([COLLECTOR_CMD, "pki", "revoke", a, "--dir", str(pki_dir)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a in agents
    ]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.startswith("revoked ")
    crl = x509.load_pem_x509_crl(pki.crl_path(pki_dir).read_bytes())
    assert len(crl) == len(agents)
